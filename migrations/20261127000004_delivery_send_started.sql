-- When the SMTP transaction of the current attempt may have started
-- (R54). Set, in its own commit, right before a claimed delivery is handed
-- to the transport; cleared when the row is claimed again. After a crash,
-- a `sending` row with an expired lease is `unknown` only when this is
-- set; a row that was claimed and prepared but never handed over goes back
-- to `pending`, keeping its prepared bytes.
ALTER TABLE deliveries ADD COLUMN send_started_at TEXT;

-- Rows leased before this column existed keep the old, conservative
-- reading: a prepared message means the send may have started.
UPDATE deliveries SET send_started_at = lease_until
WHERE state = 'sending' AND message IS NOT NULL;
