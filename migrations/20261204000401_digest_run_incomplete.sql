-- A run that ends with deliveries still due or leased is `incomplete`,
-- not `done` (a run reports `done` only when nothing due is left). SQLite
-- cannot alter a CHECK constraint, so the table is rebuilt; it has no
-- foreign keys pointing at it.
CREATE TABLE digest_runs_new (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    state       TEXT NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'done', 'incomplete', 'paused_errors',
                                 'interrupted')),
    planned     INTEGER NOT NULL DEFAULT 0,
    sent        INTEGER NOT NULL DEFAULT 0,
    retried     INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    unknown     INTEGER NOT NULL DEFAULT 0,
    note        TEXT
);
INSERT INTO digest_runs_new (id, started_at, finished_at, state, planned, sent, retried, failed,
                             skipped, unknown, note)
SELECT id, started_at, finished_at, state, planned, sent, retried, failed, skipped, unknown, note
FROM digest_runs;
DROP TABLE digest_runs;
ALTER TABLE digest_runs_new RENAME TO digest_runs;
