-- Sources, events, and the hourly rollup that insights read instead of scanning events.
CREATE TABLE sources (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('webhook', 'tracker', 'system')),
    enabled     INTEGER NOT NULL DEFAULT 1,
    description TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '[]',
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);

-- No foreign key to sources: removing a source keeps the history it collected.
CREATE TABLE events (
    id           TEXT PRIMARY KEY,   -- UUIDv7: time-ordered, so newest-first rides this key
    type         TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    received_ms  INTEGER NOT NULL,
    profile_less INTEGER NOT NULL,
    profile_id   TEXT,
    session_id   TEXT,
    properties   TEXT NOT NULL,      -- JSON object
    context      TEXT NOT NULL       -- JSON object
);
CREATE INDEX events_by_type ON events (type, id);
CREATE INDEX events_by_source ON events (source_id, id);
CREATE INDEX events_by_profile ON events (profile_id, id) WHERE profile_id IS NOT NULL;

-- Maintained in the same transaction as the events it counts.
CREATE TABLE event_counts_hourly (
    hour         INTEGER NOT NULL,   -- Unix ms of the hour's start
    type         TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    profile_less INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (hour, type, source_id, profile_less)
) WITHOUT ROWID;
