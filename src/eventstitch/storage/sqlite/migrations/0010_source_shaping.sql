-- How a source's deliveries become events (type and delivery id from a header or a path, one
-- event per array element, redactions, form bodies): JSON; NULL: stored as they come.
ALTER TABLE sources ADD COLUMN shaping TEXT;
