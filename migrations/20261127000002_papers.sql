-- Papers from every listing source, their upvote history, the fetch log
-- and HTTP conditional-GET validators. Timestamps are RFC 3339 UTC text
-- (sortable); days are YYYY-MM-DD. List-valued columns are JSON arrays.

CREATE TABLE papers (
    -- Canonical id: arXiv id without version ("2606.00467", "hep-th/9901001").
    id            TEXT PRIMARY KEY,
    -- Highest arXiv version seen.
    version       INTEGER,
    title         TEXT NOT NULL,
    abstract      TEXT NOT NULL,
    authors       TEXT NOT NULL DEFAULT '[]',
    categories    TEXT NOT NULL DEFAULT '[]',
    published_at  TEXT,
    -- Latest day a source listed the paper as new (HF daily list day,
    -- arXiv new/cross announcement). Candidates are selected by it.
    listed_on     TEXT,
    upvotes       INTEGER,
    comments      INTEGER,
    github_repo   TEXT,
    project_page  TEXT,
    ai_summary    TEXT,
    ai_keywords   TEXT NOT NULL DEFAULT '[]',
    organization  TEXT,
    doi           TEXT,
    journal_ref   TEXT,
    -- Sources that reported the paper: ["arxiv_feed","huggingface",…].
    sources       TEXT NOT NULL DEFAULT '[]',
    -- Source whose title/abstract/authors are stored (arXiv outranks HF).
    text_source   TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX papers_listed_on ON papers (listed_on);

-- Upvote counts over time. A row is written when the count changed or the
-- previous row is older than the heartbeat (see store/papers.rs), so hourly
-- polling of unchanged papers writes nothing.
CREATE TABLE upvote_observations (
    paper_id    TEXT NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    observed_at TEXT NOT NULL,
    upvotes     INTEGER NOT NULL,
    PRIMARY KEY (paper_id, observed_at)
) WITHOUT ROWID;

-- One row per source per fetch run, ok or not: for /healthz and operators.
CREATE TABLE fetch_log (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    ok            INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error         TEXT,
    parsed        INTEGER NOT NULL DEFAULT 0,
    inserted      INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    observations  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX fetch_log_source_time ON fetch_log (source, finished_at);

-- Conditional-GET validators per URL, written in the same transaction as
-- the papers they describe, so a 304 never hides data that was not stored.
CREATE TABLE http_validators (
    url           TEXT PRIMARY KEY,
    etag          TEXT,
    last_modified TEXT,
    -- SHA-256 of the last processed body: arXiv's ETag is exactly this,
    -- and an identical body is skipped even when no 304 is sent.
    body_sha256   TEXT,
    -- Items in that body (HF paging continues past a 304 page only when
    -- the page was full).
    item_count    INTEGER,
    updated_at    TEXT NOT NULL
);
