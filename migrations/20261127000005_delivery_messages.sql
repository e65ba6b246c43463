-- Prepared message bytes move out of `deliveries` into their own table.
--
-- Why: SQLite rewrites a whole record, overflow pages included, when an
-- UPDATE changes its size. With the ~20 KB sealed message inline, every
-- state change of a delivery (send started, sent) rewrote the message
-- too, and the bytes of sent digests were kept for ever (about 2 GB a day
-- at 100,000 subscribers). Here a delivery row stays small, and the bytes
-- live only while a resend may still need them: they are deleted when the
-- delivery ends `sent`, `failed` or `skipped`.
--
-- `deliveries.message_id` is set in the same statement that stores the
-- bytes, so "prepared" is `message_id IS NOT NULL`.
CREATE TABLE delivery_messages (
    delivery_id INTEGER PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    -- The exact bytes to send, compressed and encrypted (`digest::Sealer`):
    -- they carry the subscriber's links.
    sealed      BLOB NOT NULL
);

INSERT INTO delivery_messages (delivery_id, sealed)
SELECT id, message FROM deliveries
WHERE message IS NOT NULL AND state NOT IN ('sent', 'failed', 'skipped');

-- A prepared row always has its bytes; one whose bytes are gone is not
-- prepared any more.
UPDATE deliveries SET message_id = NULL
WHERE message IS NULL AND state NOT IN ('sent', 'failed', 'skipped');

ALTER TABLE deliveries DROP COLUMN message;
