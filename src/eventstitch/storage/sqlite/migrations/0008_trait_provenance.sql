-- Which event each trait value came from, so that an older event reaching a profile later (a
-- backfill reads newest first; a stored event is linked retroactively) never overwrites a
-- newer value. Traits set before this version have none: the next event carrying one sets it.
ALTER TABLE profiles ADD COLUMN trait_events TEXT NOT NULL DEFAULT '{}';

-- The traits an event carried under its source's rules, kept beside its identifiers, so that
-- linking it later copies them as linking it at ingest would have.
CREATE TABLE event_traits (
    event_id TEXT PRIMARY KEY,
    traits   TEXT NOT NULL
) WITHOUT ROWID;
