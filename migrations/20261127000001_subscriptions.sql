-- Subscribers, consent, tokens, suppressions and the transactional outbox.
-- Timestamps are RFC 3339 UTC text ("2026-11-27T08:00:00.000Z"), which
-- sorts correctly as text.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE subscribers (
    id                INTEGER PRIMARY KEY,
    -- As typed (trimmed); mail goes here.
    email             TEXT NOT NULL,
    -- Domain lower-cased and punycoded: the uniqueness key (R34).
    email_canonical   TEXT NOT NULL UNIQUE,
    state             TEXT NOT NULL
                      CHECK (state IN ('pending', 'active', 'paused', 'unsubscribed')),
    -- Preference lists as JSON arrays of strings.
    topics            TEXT NOT NULL DEFAULT '[]',
    excluded          TEXT NOT NULL DEFAULT '[]',
    authors           TEXT NOT NULL DEFAULT '[]',
    categories        TEXT NOT NULL DEFAULT '[]',
    digest_size       INTEGER NOT NULL CHECK (digest_size BETWEEN 1 AND 50),
    -- daily | weekdays | weekly:<day>
    frequency         TEXT NOT NULL,
    -- HH:MM local time in time_zone
    send_time         TEXT NOT NULL,
    time_zone         TEXT NOT NULL,
    fallback_trending INTEGER NOT NULL DEFAULT 0 CHECK (fallback_trending IN (0, 1)),
    -- Manage-token generation: bumping it rotates the manage link.
    token_generation  INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    confirmed_at      TEXT,
    unsubscribed_at   TEXT
);
CREATE INDEX subscribers_state ON subscribers (state);

-- Proof of consent (R43): one row per subscription request.
CREATE TABLE consents (
    id                INTEGER PRIMARY KEY,
    subscriber_id     INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    -- web_form | operator_import
    method            TEXT NOT NULL CHECK (method IN ('web_form', 'operator_import')),
    -- The form URL, or "cli" for operator imports.
    source            TEXT NOT NULL,
    -- SHA-256 of the consent text shown to the subscriber.
    consent_text_hash TEXT NOT NULL,
    topics            TEXT NOT NULL,
    ip                TEXT,
    requested_at      TEXT NOT NULL,
    confirmed_at      TEXT
);
CREATE INDEX consents_subscriber ON consents (subscriber_id);

-- Only SHA-256 hashes of tokens are stored (R30).
CREATE TABLE tokens (
    hash          TEXT PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    purpose       TEXT NOT NULL CHECK (purpose IN ('confirm', 'manage')),
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    used_at       TEXT,
    revoked_at    TEXT
);
CREATE INDEX tokens_subscriber ON tokens (subscriber_id);

-- Addresses that must never be mailed again, by hash only (R46).
CREATE TABLE suppressions (
    email_hash TEXT PRIMARY KEY,
    reason     TEXT NOT NULL
               CHECK (reason IN ('hard_bounce', 'complaint', 'deleted', 'manual')),
    created_at TEXT NOT NULL
);

-- Confirmation sends per address hash, for the per-address and global
-- limits (R32); survives restarts.
CREATE TABLE confirm_sends (
    email_hash TEXT NOT NULL,
    queued_at  TEXT NOT NULL
);
CREATE INDEX confirm_sends_hash ON confirm_sends (email_hash, queued_at);
CREATE INDEX confirm_sends_time ON confirm_sends (queued_at);

-- Transactional mail, drained by a worker; web requests only insert here.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    -- confirm: a confirmation link; manage_link: "you are already subscribed".
    kind            TEXT NOT NULL CHECK (kind IN ('confirm', 'manage_link')),
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'retry', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
