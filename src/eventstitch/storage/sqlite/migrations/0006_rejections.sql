-- Refused ingest requests, kept for inspection and replay (src/eventstitch/rejections/).
-- Bounded by count and by age: each write deletes the oldest beyond the limits and adds what it
-- deleted to rejection_drops.
CREATE TABLE rejections (
    id                 TEXT PRIMARY KEY,   -- UUIDv7: newest first and time bounds ride this key
    received_ms        INTEGER NOT NULL,
    route              TEXT NOT NULL,      -- collect | track
    reason             TEXT NOT NULL,
    status             INTEGER NOT NULL,
    message            TEXT NOT NULL,
    errors             TEXT NOT NULL,      -- JSON, as in the error answer
    source_id          TEXT,
    method             TEXT NOT NULL,
    path               TEXT NOT NULL,
    query              TEXT NOT NULL,
    headers            TEXT NOT NULL,      -- JSON object, credentials left out
    client             TEXT,
    body               BLOB NOT NULL,      -- at most EVENTSTITCH_REJECTIONS_MAX_BODY_BYTES
    body_size          INTEGER,            -- the original size; NULL when it was never read
    body_truncated     INTEGER NOT NULL,
    replayed_ms        INTEGER,
    replayed_event_ids TEXT                -- JSON array
);
CREATE INDEX rejections_by_reason ON rejections (reason, id);
CREATE INDEX rejections_by_source ON rejections (source_id, id);

-- Rejections not kept, by cause (buffer_full, max_rows, max_age, error), over all processes.
CREATE TABLE rejection_drops (
    cause TEXT PRIMARY KEY,
    total INTEGER NOT NULL
);
