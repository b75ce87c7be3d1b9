-- Profiles, their identifiers, sessions, and what each event carries for later conversion.
ALTER TABLE sources ADD COLUMN identification TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sources ADD COLUMN traits TEXT NOT NULL DEFAULT '{}';

ALTER TABLE events ADD COLUMN converted_ms INTEGER;
ALTER TABLE events ADD COLUMN converted_by TEXT;   -- "kind:value" that linked the event
CREATE INDEX events_converted ON events (source_id, type) WHERE converted_ms IS NOT NULL;

CREATE TABLE profiles (
    id          TEXT PRIMARY KEY,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    traits      TEXT NOT NULL DEFAULT '{}',
    merged_into TEXT                  -- set when merged: the survivor's id
);
CREATE INDEX profiles_merged_into ON profiles (merged_into) WHERE merged_into IS NOT NULL;

-- One owner per (kind, value), enforced here and not by hope.
CREATE TABLE identifiers (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
CREATE INDEX identifiers_by_profile ON identifiers (profile_id);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    profile_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX sessions_by_profile ON sessions (profile_id);

-- What each event carried, so that a profile that learns an identifier later can claim the
-- profile-less events that carried it.
CREATE TABLE event_identifiers (
    kind     TEXT NOT NULL,
    value    TEXT NOT NULL,
    event_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (kind, value, event_id)
) WITHOUT ROWID;
CREATE INDEX event_identifiers_by_event ON event_identifiers (event_id);

-- Merges done and merges refused by a guard, visible on both profiles.
CREATE TABLE profile_merges (
    id           INTEGER PRIMARY KEY,
    survivor     TEXT NOT NULL,
    merged       TEXT NOT NULL,
    event_id     TEXT,
    at_ms        INTEGER NOT NULL,
    refused_kind TEXT               -- set when a guard refused the merge
);
CREATE INDEX profile_merges_survivor ON profile_merges (survivor);
CREATE INDEX profile_merges_merged ON profile_merges (merged);

-- Eventstitch's own happenings arrive as events of this read-only source.
INSERT INTO sources (id, name, kind, enabled, description, tags, created_ms, updated_ms)
VALUES ('system', 'Eventstitch', 'system', 1, 'Events Eventstitch records about itself.', '[]',
        CAST(strftime('%s', 'now') AS INTEGER) * 1000, CAST(strftime('%s', 'now') AS INTEGER) * 1000);

-- Where a long job (identity backfill) stopped, so that it can resume.
CREATE TABLE checkpoints (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
