-- Refused ingest requests, kept for inspection and replay (src/eventstitch/rejections/); the
-- same table as SQLite's 0006. JSON columns are text, not jsonb: they are only ever read back
-- whole, and jsonb would refuse U+0000 in a header.
CREATE TABLE rejections (
    id                 text COLLATE "C" PRIMARY KEY,
    received_ms        bigint NOT NULL,
    route              text NOT NULL,
    reason             text COLLATE "C" NOT NULL,
    status             integer NOT NULL,
    message            text NOT NULL,
    errors             text NOT NULL,
    source_id          text COLLATE "C",
    method             text NOT NULL,
    path               text NOT NULL,
    query              text NOT NULL,
    headers            text NOT NULL,
    client             text,
    body               bytea NOT NULL,
    body_size          bigint,
    body_truncated     boolean NOT NULL,
    replayed_ms        bigint,
    replayed_event_ids text
);
CREATE INDEX rejections_by_reason ON rejections (reason, id);
CREATE INDEX rejections_by_source ON rejections (source_id, id);

CREATE TABLE rejection_drops (
    cause text PRIMARY KEY,
    total bigint NOT NULL
);
