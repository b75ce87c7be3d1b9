-- The PostgreSQL schema: the same tables as SQLite's migrations 0001-0004, in one step.
-- Every text column that is compared or ordered uses the "C" collation, so that ids, types and
-- source ids sort byte by byte as in SQLite whatever the database's locale: time filters and
-- paging rely on UUIDv7 ids ordering as strings.

CREATE TABLE sources (
    id             text COLLATE "C" PRIMARY KEY,
    name           text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('webhook', 'tracker', 'system')),
    enabled        boolean NOT NULL DEFAULT true,
    description    text NOT NULL DEFAULT '',
    tags           jsonb NOT NULL DEFAULT '[]',
    created_ms     bigint NOT NULL,
    updated_ms     bigint NOT NULL,
    identification jsonb NOT NULL DEFAULT '[]',
    traits         jsonb NOT NULL DEFAULT '{}',
    delivery_id_path text NOT NULL DEFAULT ''
);

-- No foreign key to sources: removing a source keeps the history it collected.
CREATE TABLE events (
    id               text COLLATE "C" PRIMARY KEY,  -- UUIDv7: newest-first rides this key
    type             text COLLATE "C" NOT NULL,
    source_id        text COLLATE "C" NOT NULL,
    received_ms      bigint NOT NULL,
    profile_less     boolean NOT NULL,
    profile_id       text COLLATE "C",
    session_id       text COLLATE "C",
    properties       jsonb NOT NULL,
    context          jsonb NOT NULL,
    -- The JSON exactly as received, kept only when jsonb cannot hold it as it was: a string
    -- with U+0000 (jsonb refuses it; the jsonb copy has U+FFFD instead, for filters), or a
    -- float jsonb would print as an integer (1e+16). Reads prefer it when set.
    properties_exact text,
    context_exact    text,
    converted_ms     bigint,
    converted_by     text COLLATE "C"                -- "kind:value" that linked the event
);
CREATE INDEX events_by_type ON events (type, id);
CREATE INDEX events_by_source ON events (source_id, id);
CREATE INDEX events_by_profile ON events (profile_id, id) WHERE profile_id IS NOT NULL;
CREATE INDEX events_converted ON events (source_id, type) WHERE converted_ms IS NOT NULL;
-- Serves `properties.a.b=x` filters, which become containment: properties @> '{"a":{"b":"x"}}'.
CREATE INDEX events_properties ON events USING gin (properties jsonb_path_ops);

-- Maintained in the same transaction as the events it counts, by the triggers below.
CREATE TABLE event_counts_hourly (
    hour         bigint NOT NULL,                  -- Unix ms of the hour's start
    type         text COLLATE "C" NOT NULL,
    source_id    text COLLATE "C" NOT NULL,
    profile_less boolean NOT NULL,
    count        bigint NOT NULL,
    PRIMARY KEY (hour, type, source_id, profile_less)
);

-- One statement-level trigger per direction: a batch of a thousand events costs one upsert
-- statement, whatever code path wrote them. The rows are upserted in key order so that two
-- processes counting overlapping hours lock the rollup rows in the same order and cannot
-- deadlock. A delete counts down (rows stay at zero; readers skip empty groups).
CREATE FUNCTION events_count_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO event_counts_hourly AS c (hour, type, source_id, profile_less, count)
    SELECT received_ms - received_ms % 3600000, type, source_id, profile_less, count(*)
    FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (hour, type, source_id, profile_less)
    DO UPDATE SET count = c.count + excluded.count;
    RETURN NULL;
END
$$;

CREATE FUNCTION events_count_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO event_counts_hourly AS c (hour, type, source_id, profile_less, count)
    SELECT received_ms - received_ms % 3600000, type, source_id, profile_less, -count(*)
    FROM old_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (hour, type, source_id, profile_less)
    DO UPDATE SET count = c.count + excluded.count;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_count_insert AFTER INSERT ON events
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION events_count_insert();

CREATE TRIGGER events_count_delete AFTER DELETE ON events
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION events_count_delete();

CREATE TABLE profiles (
    id          text COLLATE "C" PRIMARY KEY,
    created_ms  bigint NOT NULL,
    updated_ms  bigint NOT NULL,
    traits      jsonb NOT NULL DEFAULT '{}',
    merged_into text COLLATE "C"                   -- set when merged: the survivor's id
);
CREATE INDEX profiles_merged_into ON profiles (merged_into) WHERE merged_into IS NOT NULL;

-- One owner per (kind, value), enforced here and not by hope.
CREATE TABLE identifiers (
    kind       text COLLATE "C" NOT NULL,
    value      text COLLATE "C" NOT NULL,
    profile_id text COLLATE "C" NOT NULL,
    created_ms bigint NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identifiers_by_profile ON identifiers (profile_id);

CREATE TABLE sessions (
    id         text COLLATE "C" PRIMARY KEY,
    profile_id text COLLATE "C" NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL
);
CREATE INDEX sessions_by_profile ON sessions (profile_id);

-- What each event carried, so that a profile that learns an identifier later can claim the
-- profile-less events that carried it.
CREATE TABLE event_identifiers (
    kind     text COLLATE "C" NOT NULL,
    value    text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    position integer NOT NULL,
    PRIMARY KEY (kind, value, event_id)
);
CREATE INDEX event_identifiers_by_event ON event_identifiers (event_id);

-- Merges done and merges refused by a guard, visible on both profiles.
CREATE TABLE profile_merges (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    survivor     text COLLATE "C" NOT NULL,
    merged       text COLLATE "C" NOT NULL,
    event_id     text COLLATE "C",
    at_ms        bigint NOT NULL,
    refused_kind text                              -- set when a guard refused the merge
);
CREATE INDEX profile_merges_survivor ON profile_merges (survivor);
CREATE INDEX profile_merges_merged ON profile_merges (merged);

-- Eventstitch's own happenings arrive as events of this read-only source.
INSERT INTO sources (id, name, kind, enabled, description, tags, created_ms, updated_ms)
VALUES ('system', 'Eventstitch', 'system', true, 'Events Eventstitch records about itself.', '[]',
        (extract(epoch FROM now()) * 1000)::bigint, (extract(epoch FROM now()) * 1000)::bigint);

-- Where a long job (identity backfill) stopped, so that it can resume.
CREATE TABLE checkpoints (
    name       text COLLATE "C" PRIMARY KEY,
    value      text NOT NULL,
    updated_ms bigint NOT NULL
);

-- Delivery ids of webhook retries: the same id from the same source within the window is
-- stored once. The key is claimed (inserted) before the event in the same transaction, so a
-- second process with the same delivery waits on the first's row and then sees it taken.
-- Rows past the window are taken over by a new delivery or deleted by the writers as they go.
CREATE TABLE delivery_keys (
    source_id text COLLATE "C" NOT NULL,
    key       text COLLATE "C" NOT NULL,
    event_id  text COLLATE "C" NOT NULL,
    seen_ms   bigint NOT NULL,
    PRIMARY KEY (source_id, key)
);
CREATE INDEX delivery_keys_by_time ON delivery_keys (seen_ms);
CREATE INDEX delivery_keys_by_event ON delivery_keys (event_id);
