-- Asynchronous delivery feedback (issue 14, R56): bounces and spam
-- complaints that arrive after the relay accepted a digest, from the
-- bounce mailbox (DSN, ARF) or a provider's webhook. One row per event,
-- kept with its subscriber (shown in their export) and, when it could be
-- matched, its delivery.
CREATE TABLE bounce_events (
    id            INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    -- NULL when only the recipient address matched (no VERP token or
    -- Message-ID to name the digest), or the delivery row is gone.
    delivery_id   INTEGER REFERENCES deliveries (id) ON DELETE SET NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('hard_bounce', 'soft_bounce', 'complaint')),
    source        TEXT NOT NULL
                  CHECK (source IN ('mailbox', 'ses', 'postmark', 'sendgrid', 'mailgun')),
    -- The source's own identity of the event (the bounce message's
    -- Message-ID, the SNS MessageId, the provider's event id…): a second
    -- copy of the same event is ignored.
    event_key     TEXT NOT NULL,
    -- RFC 3463 status ("5.1.1") when the report gave one.
    status        TEXT,
    -- A short, sanitised diagnostic ("smtp; 550 5.1.1 user unknown").
    detail        TEXT NOT NULL DEFAULT '',
    -- What the event did: 'suppressed', 'unsubscribed', 'counted'.
    action        TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    UNIQUE (source, event_key)
);
CREATE INDEX bounce_events_subscriber ON bounce_events (subscriber_id, kind, received_at);
CREATE INDEX bounce_events_received ON bounce_events (kind, received_at);
