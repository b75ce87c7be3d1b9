-- The hourly rollup follows the events table by itself: every insert counts, every delete
-- uncounts, whatever code path wrote. Per-row triggers run inside SQLite, in the writer's
-- statement, and spare the writer a statement (and a round trip for the GIL) per batch.
CREATE TRIGGER events_count_insert AFTER INSERT ON events
BEGIN
    INSERT INTO event_counts_hourly (hour, type, source_id, profile_less, count)
    VALUES (NEW.received_ms - NEW.received_ms % 3600000, NEW.type, NEW.source_id,
            NEW.profile_less, 1)
    ON CONFLICT (hour, type, source_id, profile_less) DO UPDATE SET count = count + 1;
END;

CREATE TRIGGER events_count_delete AFTER DELETE ON events
BEGIN
    UPDATE event_counts_hourly SET count = count - 1
    WHERE hour = OLD.received_ms - OLD.received_ms % 3600000 AND type = OLD.type
      AND source_id = OLD.source_id AND profile_less = OLD.profile_less;
END;
