-- Delivery ids of webhook retries: the same id from the same source within the window is
-- stored once. Rows past the window are deleted by the writer as it goes.
CREATE TABLE delivery_keys (
    source_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    seen_ms   INTEGER NOT NULL,
    UNIQUE (source_id, key)
);
CREATE INDEX delivery_keys_by_time ON delivery_keys (seen_ms);

ALTER TABLE sources ADD COLUMN delivery_id_path TEXT NOT NULL DEFAULT '';
