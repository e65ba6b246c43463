-- Suppressions name their subscriber and have a reason of their own for
-- the soft-bounce limit.
--
-- * `soft_bounce_limit`: `bounces.soft_bounce_limit` soft bounces within
--   the window. It was stored as `hard_bounce` before, which nothing but a
--   new address ever lifts; the reader's own confirmed opt-in lifts it.
-- * `subscriber_id`: the subscriber whose address this is, so listings,
--   `/metrics` and the settings page can show who is suppressed and why
--   without hashing every address (the list stays keyed by hash: it
--   outlives a deleted subscriber, whose link then becomes NULL).
--
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.
-- Existing rows are linked to their subscribers, and the soft-bounce-limit
-- ones among them relabelled, by `Store::link_suppressions` at the next
-- start (SQL cannot compute the address hashes); the settings row below
-- asks for that pass.
CREATE TABLE suppressions_new (
    email_hash    TEXT PRIMARY KEY,
    reason        TEXT NOT NULL
                  CHECK (reason IN ('hard_bounce', 'soft_bounce_limit', 'complaint',
                                    'deleted', 'manual')),
    created_at    TEXT NOT NULL,
    subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE SET NULL
);
INSERT INTO suppressions_new (email_hash, reason, created_at)
    SELECT email_hash, reason, created_at FROM suppressions;
DROP TABLE suppressions;
ALTER TABLE suppressions_new RENAME TO suppressions;
-- Listings and the foreign key's ON DELETE look rows up by subscriber.
CREATE INDEX suppressions_subscriber ON suppressions (subscriber_id);

INSERT INTO settings (key, value)
    SELECT 'suppressions_to_link', '1' WHERE EXISTS (SELECT 1 FROM suppressions);
