-- The transaction that inserted each event (its full id, as pg_current_xact_id() gives it),
-- kept apart from xmin (an UPDATE, such as a conversion, gives the row a new xmin): an insight
-- answer keeps what it read of the hot tail with the snapshot it read in, and next time reads
-- only events whose inserting transaction that snapshot did not see. A bigint, not xid8, so
-- that a BRIN index finds the recent ones (xid8 has no BRIN operator class): they are at the
-- end of the heap, and the index costs an insert almost nothing. Events stored before this
-- migration have none: they count as seen by every snapshot. Adding the column and its
-- default does not rewrite the table.
ALTER TABLE events ADD COLUMN inserted_xact bigint;
ALTER TABLE events ALTER COLUMN inserted_xact SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX events_inserted_xact ON events USING brin (inserted_xact) WITH (autosummarize = on);
