//! Papers, upvote observations, the fetch log and HTTP validators.
//!
//! # Merge rule (one row per canonical id, whichever sources saw it)
//!
//! - `version`: the highest seen.
//! - `title`, `abstract`, `authors`: arXiv (feed or API) outranks Hugging
//!   Face. A record replaces the stored text when its source ranks at
//!   least as high as the one that wrote it and it is not an older arXiv
//!   version; a lower-ranked record only fills empty fields. So HF text is
//!   used until arXiv is seen, and an arXiv replacement updates the text.
//! - `categories`: the export API replaces them (it marks the primary,
//!   listed first); a feed record fills them when empty, else adds new
//!   ones at the end.
//! - `published`: the export API's value (v1 submission time) wins; others
//!   only fill it.
//! - `listed_on`: the latest listing day any source reported. Parsers set
//!   it only for real listings (HF daily list, arXiv `new`/`cross`), so a
//!   replacement or an API backfill never makes a paper new again.
//! - `upvotes`, `comments`, `ai_summary`, `ai_keywords`, `github_repo`,
//!   `project_page`, `organization` (HF) and `doi`, `journal_ref` (arXiv):
//!   the incoming value when it has one; an empty value never overwrites.
//! - `sources`: the union.
//!
//! # Observation rule
//!
//! For each HF record, an upvote observation is written when the paper
//! has none yet, when the count differs from the latest one, or when the
//! latest one is at least [`OBSERVATION_HEARTBEAT`] old. Hourly polling of
//! unchanged papers therefore costs one indexed read per paper and no
//! write, while the heartbeat still tells ranking "the count was still N
//! at time t" (velocity over a quiet period is 0, not unknown).

use super::{parse_ts, parse_ts_opt, ts, Result, Store, StoreError};
use crate::domain::fetch::StorageError;
pub use crate::domain::fetch::{FetchLogEntry, HttpValidator, PaperBatch, UpsertStats};
use crate::domain::{Candidate, Paper, PaperId, SourceKind, UpvoteObservation, Window};
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use std::collections::HashMap;

/// An unchanged count is re-recorded once this much time has passed since
/// the latest observation (see the module docs).
pub const OBSERVATION_HEARTBEAT: chrono::TimeDelta = chrono::TimeDelta::hours(6);

fn text_rank(s: SourceKind) -> u8 {
    match s {
        SourceKind::HuggingFace => 1,
        SourceKind::ArxivFeed | SourceKind::ArxivApi => 2,
    }
}

/// Applies the merge rule (module docs) to a stored paper and an incoming
/// record from `source`. Returns the merged paper and the source that now
/// owns the text fields. Pure.
pub fn merge_paper(
    stored: &Paper,
    stored_text_source: SourceKind,
    incoming: &Paper,
    source: SourceKind,
) -> (Paper, SourceKind) {
    let mut m = stored.clone();
    let older_version = matches!((incoming.version, stored.version), (Some(a), Some(b)) if a < b);
    let prefer = text_rank(source) >= text_rank(stored_text_source) && !older_version;
    let mut text_source = stored_text_source;
    if !incoming.title.is_empty() && (prefer || m.title.is_empty()) {
        m.title = incoming.title.clone();
        if prefer {
            text_source = source;
        }
    }
    if !incoming.abstract_text.is_empty() && (prefer || m.abstract_text.is_empty()) {
        m.abstract_text = incoming.abstract_text.clone();
    }
    if !incoming.authors.is_empty() && (prefer || m.authors.is_empty()) {
        m.authors = incoming.authors.clone();
    }
    m.version = m.version.max(incoming.version);
    if !incoming.categories.is_empty() {
        if source == SourceKind::ArxivApi || m.categories.is_empty() {
            m.categories = incoming.categories.clone();
        } else {
            for c in &incoming.categories {
                if !m.categories.contains(c) {
                    m.categories.push(c.clone());
                }
            }
        }
    }
    if incoming.published.is_some() && (source == SourceKind::ArxivApi || m.published.is_none()) {
        m.published = incoming.published;
    }
    m.listed_on = m.listed_on.max(incoming.listed_on);
    fn take<T: Clone>(slot: &mut Option<T>, v: &Option<T>) {
        if v.is_some() {
            slot.clone_from(v);
        }
    }
    take(&mut m.upvotes, &incoming.upvotes);
    take(&mut m.comments, &incoming.comments);
    take(&mut m.github_repo, &incoming.github_repo);
    take(&mut m.project_page, &incoming.project_page);
    take(&mut m.ai_summary, &incoming.ai_summary);
    take(&mut m.organization, &incoming.organization);
    take(&mut m.doi, &incoming.doi);
    take(&mut m.journal_ref, &incoming.journal_ref);
    if !incoming.ai_keywords.is_empty() {
        m.ai_keywords = incoming.ai_keywords.clone();
    }
    if !m.sources.contains(&source) {
        m.sources.push(source);
    }
    m.sources.sort();
    (m, text_source)
}

pub(super) const COLUMNS: &str =
    "id, version, title, abstract, authors, categories, published_at, listed_on, \
     upvotes, comments, github_repo, project_page, ai_summary, ai_keywords, organization, doi, \
     journal_ref, sources, text_source";

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings serialises")
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn read_list(row: &SqliteRow, col: &str) -> Result<Vec<String>> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| corrupt(col, e))
}

fn read_source(s: &str) -> Result<SourceKind> {
    SourceKind::parse(s).ok_or_else(|| corrupt("source", s))
}

pub(super) fn row_to_paper(row: &SqliteRow) -> Result<(Paper, SourceKind)> {
    let day: Option<String> = row.try_get("listed_on")?;
    let listed_on = day
        .map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|e| corrupt("listed_on", e)))
        .transpose()?;
    let version: Option<i64> = row.try_get("version")?;
    let sources = read_list(row, "sources")?
        .iter()
        .map(|s| read_source(s))
        .collect::<Result<Vec<_>>>()?;
    let text_source: String = row.try_get("text_source")?;
    let paper = Paper {
        id: PaperId::from_stored(row.try_get("id")?),
        version: version.map(|v| v as u32),
        title: row.try_get("title")?,
        abstract_text: row.try_get("abstract")?,
        authors: read_list(row, "authors")?,
        categories: read_list(row, "categories")?,
        published: parse_ts_opt(row.try_get("published_at")?)?,
        listed_on,
        upvotes: row.try_get("upvotes")?,
        comments: row.try_get("comments")?,
        github_repo: row.try_get("github_repo")?,
        project_page: row.try_get("project_page")?,
        ai_summary: row.try_get("ai_summary")?,
        ai_keywords: read_list(row, "ai_keywords")?,
        organization: row.try_get("organization")?,
        doi: row.try_get("doi")?,
        journal_ref: row.try_get("journal_ref")?,
        sources,
    };
    Ok((paper, read_source(&text_source)?))
}

async fn write_paper(
    conn: &mut SqliteConnection,
    p: &Paper,
    text_source: SourceKind,
    at: &str,
    insert: bool,
) -> Result<()> {
    let sql = if insert {
        "INSERT INTO papers (id, version, title, abstract, authors, categories, published_at, \
         listed_on, upvotes, comments, github_repo, project_page, ai_summary, ai_keywords, \
         organization, doi, journal_ref, sources, text_source, first_seen_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?20)"
    } else {
        "UPDATE papers SET version = ?2, title = ?3, abstract = ?4, authors = ?5, categories = ?6, \
         published_at = ?7, listed_on = ?8, upvotes = ?9, comments = ?10, github_repo = ?11, \
         project_page = ?12, ai_summary = ?13, ai_keywords = ?14, organization = ?15, doi = ?16, \
         journal_ref = ?17, sources = ?18, text_source = ?19, updated_at = ?20 WHERE id = ?1"
    };
    let sources: Vec<String> = p.sources.iter().map(|s| s.as_str().to_string()).collect();
    sqlx::query(sql)
        .bind(p.id.as_str())
        .bind(p.version.map(i64::from))
        .bind(&p.title)
        .bind(&p.abstract_text)
        .bind(json_list(&p.authors))
        .bind(json_list(&p.categories))
        .bind(p.published.map(ts))
        .bind(p.listed_on.map(|d| d.format("%Y-%m-%d").to_string()))
        .bind(p.upvotes)
        .bind(p.comments)
        .bind(&p.github_repo)
        .bind(&p.project_page)
        .bind(&p.ai_summary)
        .bind(json_list(&p.ai_keywords))
        .bind(&p.organization)
        .bind(&p.doi)
        .bind(&p.journal_ref)
        .bind(json_list(&sources))
        .bind(text_source.as_str())
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// What merging one incoming record did to the stored paper.
enum Merged {
    Inserted,
    Updated,
    Unchanged,
}

/// Merges `incoming` from `source` into its stored paper (the merge rule
/// in the module docs), writing only a change.
async fn merge_one(
    conn: &mut SqliteConnection,
    incoming: &Paper,
    source: SourceKind,
    at: &str,
) -> Result<Merged> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM papers WHERE id = ?"))
        .bind(incoming.id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        let empty = Paper::new(incoming.id.clone(), "", "");
        let (p, text_source) = merge_paper(&empty, source, incoming, source);
        write_paper(conn, &p, text_source, at, true).await?;
        return Ok(Merged::Inserted);
    };
    let (stored, stored_src) = row_to_paper(&row)?;
    let (p, text_source) = merge_paper(&stored, stored_src, incoming, source);
    if p != stored || text_source != stored_src {
        write_paper(conn, &p, text_source, at, false).await?;
        Ok(Merged::Updated)
    } else {
        Ok(Merged::Unchanged)
    }
}

/// Records an upvote count seen at `observed_at` when the observation
/// rule (module docs) calls for it; returns whether it did.
async fn observe_upvotes(
    conn: &mut SqliteConnection,
    id: &PaperId,
    upvotes: i64,
    observed_at: DateTime<Utc>,
) -> Result<bool> {
    let latest: Option<(String, i64)> = sqlx::query_as(
        "SELECT observed_at, upvotes FROM upvote_observations \
         WHERE paper_id = ? ORDER BY observed_at DESC LIMIT 1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let due = match latest {
        None => true,
        Some((t, n)) => n != upvotes || observed_at - parse_ts(&t)? >= OBSERVATION_HEARTBEAT,
    };
    if due {
        sqlx::query(
            "INSERT INTO upvote_observations (paper_id, observed_at, upvotes) \
             VALUES (?, ?, ?) \
             ON CONFLICT (paper_id, observed_at) DO UPDATE SET upvotes = excluded.upvotes",
        )
        .bind(id.as_str())
        .bind(ts(observed_at))
        .bind(upvotes)
        .execute(&mut *conn)
        .await?;
    }
    Ok(due)
}

/// Saves the validators of the responses the batch came from.
async fn save_validators(
    conn: &mut SqliteConnection,
    validators: &[HttpValidator],
    at: &str,
) -> Result<()> {
    for v in validators {
        sqlx::query(
            "INSERT INTO http_validators (url, etag, last_modified, body_sha256, item_count, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, \
             last_modified = excluded.last_modified, body_sha256 = excluded.body_sha256, \
             item_count = excluded.item_count, updated_at = excluded.updated_at",
        )
        .bind(&v.url)
        .bind(&v.etag)
        .bind(&v.last_modified)
        .bind(&v.body_sha256)
        .bind(v.item_count)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The `settings` key of [`Store::papers_version`].
const PAPERS_VERSION_KEY: &str = "papers_version";

impl Store {
    /// Upserts a batch of papers (merge rule in the module docs), records
    /// upvote observations (observation rule) and saves the validators, all
    /// in ONE `BEGIN IMMEDIATE` transaction: on any error nothing is written.
    pub async fn upsert_papers(&self, batch: PaperBatch<'_>) -> Result<UpsertStats> {
        let mut stats = UpsertStats::default();
        let at = ts(batch.observed_at);
        let mut tx = self.begin_write().await?;
        for incoming in batch.papers {
            match merge_one(&mut tx, incoming, batch.source, &at).await? {
                Merged::Inserted => stats.inserted += 1,
                Merged::Updated => stats.updated += 1,
                Merged::Unchanged => stats.unchanged += 1,
            }
            if let (SourceKind::HuggingFace, Some(upvotes)) = (batch.source, incoming.upvotes) {
                if observe_upvotes(&mut tx, &incoming.id, upvotes, batch.observed_at).await? {
                    stats.observations += 1;
                }
            }
        }
        save_validators(&mut tx, batch.validators, &at).await?;
        if stats.inserted + stats.updated + stats.observations > 0 {
            // Readers in any process (the daemon's preview cache after a
            // `paperboy fetch`) compare this to know their copy is stale.
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES (?, '1') \
                 ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            )
            .bind(PAPERS_VERSION_KEY)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(stats)
    }

    /// A number that changes whenever stored papers or their upvotes
    /// change (0 before the first write). Cheap: one keyed row.
    pub async fn papers_version(&self) -> Result<i64> {
        let v: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(PAPERS_VERSION_KEY)
            .fetch_optional(self.pool())
            .await?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// How many papers are stored at all, whatever their listing day.
    pub async fn papers_stored(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM papers")
            .fetch_one(self.pool())
            .await?)
    }

    /// One paper by canonical id.
    pub async fn paper(&self, id: &PaperId) -> Result<Option<Paper>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM papers WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| row_to_paper(&r).map(|(p, _)| p)).transpose()
    }

    /// Papers listed on or after `listed_since`, each with its upvote
    /// history oldest first (empty for papers HF never reported). Ordered
    /// by listing day (newest first), then id.
    pub async fn candidates(&self, listed_since: NaiveDate) -> Result<Vec<Candidate>> {
        self.candidates_between(listed_since, None).await
    }

    /// [`Store::candidates`] listed inside a digest's window (both ends
    /// included).
    pub async fn candidates_in(&self, window: &Window) -> Result<Vec<Candidate>> {
        self.candidates_between(window.since, Some(window.until))
            .await
    }

    async fn candidates_between(
        &self,
        since: NaiveDate,
        until: Option<NaiveDate>,
    ) -> Result<Vec<Candidate>> {
        let since = since.format("%Y-%m-%d").to_string();
        // Listing days are ISO dates, so they compare as text; "9" sorts
        // after every year this code will see.
        let until = until.map_or("9".to_string(), |u| u.format("%Y-%m-%d").to_string());
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM papers WHERE listed_on >= ? AND listed_on <= ? \
             ORDER BY listed_on DESC, id"
        ))
        .bind(&since)
        .bind(&until)
        .fetch_all(self.pool())
        .await?;
        let obs: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT o.paper_id, o.observed_at, o.upvotes FROM upvote_observations o \
             JOIN papers p ON p.id = o.paper_id WHERE p.listed_on >= ? AND p.listed_on <= ? \
             ORDER BY o.paper_id, o.observed_at",
        )
        .bind(&since)
        .bind(&until)
        .fetch_all(self.pool())
        .await?;
        let mut history: HashMap<String, Vec<UpvoteObservation>> = HashMap::new();
        for (id, at, upvotes) in obs {
            history.entry(id).or_default().push(UpvoteObservation {
                at: parse_ts(&at)?,
                upvotes,
            });
        }
        rows.iter()
            .map(|r| {
                let (paper, _) = row_to_paper(r)?;
                let history = history.remove(paper.id.as_str()).unwrap_or_default();
                Ok(Candidate { paper, history })
            })
            .collect()
    }

    /// Upvote history of one paper, oldest first.
    pub async fn upvote_history(&self, id: &PaperId) -> Result<Vec<UpvoteObservation>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT observed_at, upvotes FROM upvote_observations WHERE paper_id = ? ORDER BY observed_at",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(at, upvotes)| {
                Ok(UpvoteObservation {
                    at: parse_ts(&at)?,
                    upvotes,
                })
            })
            .collect()
    }

    /// How many papers have `listed_on = day` (so `serve` can tell that
    /// nothing is stored for today).
    pub async fn papers_listed_on(&self, day: NaiveDate) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM papers WHERE listed_on = ?")
                .bind(day.format("%Y-%m-%d").to_string())
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Ids of papers listed on or after `since` that no arXiv source has
    /// described yet (no categories): what the export-API backfill asks for.
    pub async fn papers_missing_arxiv_metadata(&self, since: NaiveDate) -> Result<Vec<PaperId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM papers WHERE listed_on >= ? AND categories = '[]' ORDER BY id",
        )
        .bind(since.format("%Y-%m-%d").to_string())
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().map(PaperId::from_stored).collect())
    }

    /// Appends one entry to the fetch log.
    pub async fn record_fetch(&self, e: &FetchLogEntry) -> Result<()> {
        self.write_one(
            sqlx::query(
            "INSERT INTO fetch_log (source, started_at, finished_at, ok, error, parsed, inserted, \
             updated, observations) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.source)
        .bind(ts(e.started_at))
        .bind(ts(e.finished_at))
        .bind(e.ok)
        .bind(&e.error)
        .bind(e.parsed as i64)
        .bind(e.inserted as i64)
        .bind(e.updated as i64)
        .bind(e.observations as i64),
        )
        .await?;
        Ok(())
    }

    /// When the last *successful* fetch of any source finished.
    pub async fn last_fetch(&self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> =
            sqlx::query_scalar("SELECT MAX(finished_at) FROM fetch_log WHERE ok = 1")
                .fetch_one(self.pool())
                .await?;
        parse_ts_opt(t)
    }

    /// The latest fetch-log entry of each source, by source name.
    pub async fn latest_fetches(&self) -> Result<Vec<FetchLogEntry>> {
        let rows = sqlx::query(
            "SELECT f.* FROM fetch_log f WHERE f.id = \
             (SELECT g.id FROM fetch_log g WHERE g.source = f.source ORDER BY g.finished_at DESC, g.id DESC LIMIT 1) \
             ORDER BY f.source",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let n = |c: &str| -> Result<u64> { Ok(r.try_get::<i64, _>(c)? as u64) };
                Ok(FetchLogEntry {
                    source: r.try_get("source")?,
                    started_at: parse_ts(&r.try_get::<String, _>("started_at")?)?,
                    finished_at: parse_ts(&r.try_get::<String, _>("finished_at")?)?,
                    ok: r.try_get("ok")?,
                    error: r.try_get("error")?,
                    parsed: n("parsed")?,
                    inserted: n("inserted")?,
                    updated: n("updated")?,
                    observations: n("observations")?,
                })
            })
            .collect()
    }

    /// Stored conditional-GET validators for `url`.
    pub async fn http_validator(&self, url: &str) -> Result<Option<HttpValidator>> {
        type Row = (Option<String>, Option<String>, Option<String>, Option<i64>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT etag, last_modified, body_sha256, item_count FROM http_validators WHERE url = ?",
        )
        .bind(url)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(
            |(etag, last_modified, body_sha256, item_count)| HttpValidator {
                url: url.to_string(),
                etag,
                last_modified,
                body_sha256,
                item_count,
            },
        ))
    }
}

/// The fetcher's view of the store: the same statements as above.
impl crate::domain::fetch::ListingStore for Store {
    fn http_validator<'a>(
        &'a self,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Option<HttpValidator>, StorageError>> {
        Box::pin(async move { Ok(Store::http_validator(self, url).await?) })
    }

    fn upsert_papers<'a>(
        &'a self,
        batch: PaperBatch<'a>,
    ) -> BoxFuture<'a, Result<UpsertStats, StorageError>> {
        Box::pin(async move { Ok(Store::upsert_papers(self, batch).await?) })
    }

    fn record_fetch<'a>(
        &'a self,
        entry: &'a FetchLogEntry,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { Ok(Store::record_fetch(self, entry).await?) })
    }

    fn papers_missing_arxiv_metadata(
        &self,
        since: NaiveDate,
    ) -> BoxFuture<'_, Result<Vec<PaperId>, StorageError>> {
        Box::pin(async move { Ok(Store::papers_missing_arxiv_metadata(self, since).await?) })
    }
}

#[cfg(test)]
mod tests;
