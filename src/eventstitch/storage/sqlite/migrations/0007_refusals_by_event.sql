-- A backfill looks up the refusals already recorded for the events it re-reads.
CREATE INDEX profile_merges_refused_event ON profile_merges (event_id)
    WHERE refused_kind IS NOT NULL;
