-- Digest deliveries: one row per (subscriber, local digest date), with a
-- state machine (R48, R49):
--   pending → sending (leased) → sent | retry | failed | skipped | unknown
-- `retry` returns to `sending` when due; `unknown` (a lease that expired
-- after the message was prepared, i.e. possibly mid-SMTP) is resolved by
-- digest.unknown_policy.
CREATE TABLE deliveries (
    id                   INTEGER PRIMARY KEY,
    subscriber_id        INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    digest_date          TEXT NOT NULL,
    state                TEXT NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'sending', 'sent', 'retry', 'failed',
                                          'skipped', 'unknown')),
    attempts             INTEGER NOT NULL DEFAULT 0,
    due_at               TEXT NOT NULL,
    next_attempt_at      TEXT NOT NULL,
    lease_until          TEXT,
    last_code            INTEGER,
    last_enhanced_status TEXT,
    last_error           TEXT,
    message_id           TEXT,
    -- The exact bytes sent, encrypted (they carry the subscriber's links),
    -- stored before the first SMTP attempt so a resend is byte-identical.
    message              BLOB,
    -- JSON array of the canonical paper ids the digest carries.
    papers               TEXT,
    -- Whether the unknown-outcome resend was already used.
    resent               INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    sent_at              TEXT,
    UNIQUE (subscriber_id, digest_date)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);

-- Every paper ever mailed to a subscriber (canonical id, so no version is
-- ever sent twice).
CREATE TABLE sent_papers (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    paper_id      TEXT NOT NULL,
    digest_date   TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, paper_id)
) WITHOUT ROWID;

-- One row per digest run, for /healthz, /metrics and reports.
CREATE TABLE digest_runs (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    state       TEXT NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'done', 'paused_errors', 'interrupted')),
    planned     INTEGER NOT NULL DEFAULT 0,
    sent        INTEGER NOT NULL DEFAULT 0,
    retried     INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    unknown     INTEGER NOT NULL DEFAULT 0,
    note        TEXT
);
