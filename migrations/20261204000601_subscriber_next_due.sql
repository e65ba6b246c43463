-- Planning reads only the subscribers who are due (issue 12).
--
-- `next_due_at` is the UTC instant (RFC 3339 text, like every timestamp)
-- at which the subscriber's schedule must next be evaluated: the first
-- send time after the last evaluation, computed by `digest::schedule`.
-- The empty string sorts before every timestamp and means "evaluate at
-- the next tick": new rows start there, and the trigger below puts a row
-- back there whenever anything the schedule reads changes (state,
-- frequency, send time, zone), whichever code path wrote it. A tick reads
-- `state = 'active' AND next_due_at <= now` through the partial index, so
-- a tick with nobody due reads nothing.
ALTER TABLE subscribers ADD COLUMN next_due_at TEXT NOT NULL DEFAULT '';

CREATE INDEX subscribers_next_due ON subscribers (next_due_at) WHERE state = 'active';

CREATE TRIGGER subscribers_timing_changed
AFTER UPDATE OF state, frequency, send_time, time_zone ON subscribers
WHEN OLD.state IS NOT NEW.state
  OR OLD.frequency IS NOT NEW.frequency
  OR OLD.send_time IS NOT NEW.send_time
  OR OLD.time_zone IS NOT NEW.time_zone
BEGIN
    UPDATE subscribers SET next_due_at = '' WHERE id = NEW.id;
END;
