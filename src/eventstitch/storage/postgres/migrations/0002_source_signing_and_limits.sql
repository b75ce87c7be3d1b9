-- A source may require signed deliveries (its secrets are kept here: the HMAC needs them in
-- the clear) and may have its own rate limit. NULL: unsigned, and the default limit.
ALTER TABLE sources ADD COLUMN signature jsonb;
ALTER TABLE sources ADD COLUMN rate_limit jsonb;
