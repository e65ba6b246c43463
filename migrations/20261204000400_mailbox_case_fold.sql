-- One mailbox, one subscriber: the canonical key becomes the whole address
-- lower-cased (it kept the local part's case before, so `Keeper@`,
-- `keeper@` and `KEEPER@` were three subscribers). Existing duplicates
-- are folded into one row here; every fold is recorded in
-- `subscriber_merges` and reported in the log at start-up.
--
-- Which row is kept: the one with the oldest confirmed consent (then the
-- oldest row). Its address (the form that person typed then) stays the
-- one mail goes to. Consents and tokens of the folded rows move to it,
-- so proof of consent and every manage / unsubscribe link already mailed
-- keep working; their deliveries and sent papers move too where the kept
-- row has none for that day.
--
-- The state of the kept row errs towards sending less: an unsubscribe
-- later than every confirmation of the others wins; otherwise paused
-- beats active; unconfirmed rows never make the kept row active.
--
-- Suppressions hold only hashes and cannot be re-keyed in SQL; lookups
-- also check the hash under the old key (`EmailAddress::legacy_hash`),
-- and start-up copies a folded address's old suppression to the new key.

CREATE TABLE subscriber_merges (
    id            INTEGER PRIMARY KEY,
    kept_id       INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    merged_id     INTEGER NOT NULL,
    -- The folded row's address as typed (a case variant of the kept one),
    -- for the suppression copy at start-up.
    merged_email  TEXT NOT NULL,
    merged_state  TEXT NOT NULL,
    merged_at     TEXT NOT NULL,
    -- Set once start-up has logged this merge.
    reported_at   TEXT
);

-- Each subscriber's oldest confirmed consent (falling back to its own
-- confirmed_at), and the kept row of its mailbox.
CREATE TEMP TABLE fold_rank AS
SELECT s.id,
       lower(s.email_canonical) AS mailbox,
       COALESCE((SELECT min(c.confirmed_at) FROM consents c WHERE c.subscriber_id = s.id),
                s.confirmed_at) AS first_confirmed
FROM subscribers s
WHERE lower(s.email_canonical) IN (
    SELECT lower(email_canonical) FROM subscribers
    GROUP BY lower(email_canonical) HAVING count(*) > 1);

CREATE TEMP TABLE fold AS
SELECT id, mailbox, first_confirmed,
       first_value(id) OVER (PARTITION BY mailbox
                             ORDER BY first_confirmed IS NULL, first_confirmed,
                                      (SELECT created_at FROM subscribers WHERE id = fold_rank.id),
                                      id) AS kept_id
FROM fold_rank;

INSERT INTO subscriber_merges (kept_id, merged_id, merged_email, merged_state, merged_at)
SELECT f.kept_id, s.id, s.email, s.state, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM fold f JOIN subscribers s ON s.id = f.id
WHERE f.id <> f.kept_id;

-- The kept row's state and times, from the whole group.
CREATE TEMP TABLE fold_state AS
SELECT f.kept_id,
       min(f.first_confirmed) AS confirmed_at,
       max(s.unsubscribed_at) AS unsubscribed_at,
       max(CASE WHEN s.state IN ('active', 'paused') THEN COALESCE(s.confirmed_at, '') END)
           AS last_confirmed_live,
       max(s.state = 'paused') AS any_paused,
       max(s.state = 'active') AS any_active,
       max(s.state = 'unsubscribed') AS any_unsubscribed
FROM fold f JOIN subscribers s ON s.id = f.id
GROUP BY f.kept_id;

UPDATE subscribers SET
    state = (SELECT CASE
        WHEN fs.any_unsubscribed AND (fs.last_confirmed_live IS NULL
                                      OR fs.unsubscribed_at > fs.last_confirmed_live)
            THEN 'unsubscribed'
        WHEN fs.any_paused THEN 'paused'
        WHEN fs.any_active THEN 'active'
        ELSE 'pending' END
        FROM fold_state fs WHERE fs.kept_id = subscribers.id),
    confirmed_at = (SELECT fs.confirmed_at FROM fold_state fs WHERE fs.kept_id = subscribers.id),
    unsubscribed_at = (SELECT fs.unsubscribed_at FROM fold_state fs
                       WHERE fs.kept_id = subscribers.id),
    updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
WHERE id IN (SELECT kept_id FROM fold_state);

UPDATE consents SET subscriber_id = (SELECT kept_id FROM fold WHERE fold.id = consents.subscriber_id)
WHERE subscriber_id IN (SELECT id FROM fold WHERE id <> kept_id);

UPDATE tokens SET subscriber_id = (SELECT kept_id FROM fold WHERE fold.id = tokens.subscriber_id)
WHERE subscriber_id IN (SELECT id FROM fold WHERE id <> kept_id);

-- One delivery per (subscriber, day): a folded row's delivery moves only
-- to a day the kept row has none for (the oldest such row wins).
UPDATE deliveries SET subscriber_id = (SELECT kept_id FROM fold WHERE fold.id = deliveries.subscriber_id)
WHERE subscriber_id IN (SELECT id FROM fold WHERE id <> kept_id)
  AND id = (SELECT min(d2.id) FROM deliveries d2 JOIN fold f2 ON f2.id = d2.subscriber_id
            WHERE f2.kept_id = (SELECT kept_id FROM fold WHERE fold.id = deliveries.subscriber_id)
              AND d2.digest_date = deliveries.digest_date)
  AND NOT EXISTS (SELECT 1 FROM deliveries k
                  WHERE k.subscriber_id = (SELECT kept_id FROM fold WHERE fold.id = deliveries.subscriber_id)
                    AND k.digest_date = deliveries.digest_date);

INSERT OR IGNORE INTO sent_papers (subscriber_id, paper_id, digest_date)
SELECT f.kept_id, sp.paper_id, sp.digest_date
FROM sent_papers sp JOIN fold f ON f.id = sp.subscriber_id
WHERE f.id <> f.kept_id;

-- Everything else of a folded row (its outbox mail, remaining deliveries)
-- goes with it.
DELETE FROM subscribers WHERE id IN (SELECT id FROM fold WHERE id <> kept_id);

UPDATE subscribers SET email_canonical = lower(email_canonical)
WHERE email_canonical <> lower(email_canonical);

DROP TABLE fold_state;
DROP TABLE fold;
DROP TABLE fold_rank;
