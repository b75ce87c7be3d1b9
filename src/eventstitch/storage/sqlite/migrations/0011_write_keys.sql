-- A tracker source's write key (what the analytics SDKs send), and the key it replaced, valid
-- until previous_key_until_ms while clients move over. Unique and indexed: ingest finds the
-- source by its key.
ALTER TABLE sources ADD COLUMN write_key TEXT;
ALTER TABLE sources ADD COLUMN previous_write_key TEXT;
ALTER TABLE sources ADD COLUMN previous_key_until_ms INTEGER;
CREATE UNIQUE INDEX sources_write_key ON sources (write_key) WHERE write_key IS NOT NULL;
CREATE UNIQUE INDEX sources_previous_write_key ON sources (previous_write_key)
    WHERE previous_write_key IS NOT NULL;
