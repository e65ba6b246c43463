//! What a fetch hands the store and gets back: a source's parsed batch
//! with its HTTP validators, the fetch log entry, what an upsert changed;
//! and [`ListingStore`], the port a fetcher reads and writes through. The
//! store implements it, so `sources` never sees the database.

use super::{Paper, PaperId, SourceKind};
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;

/// Conditional-GET state for one URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpValidator {
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Hex SHA-256 of the last processed body.
    pub body_sha256: Option<String>,
    /// Number of items that body held.
    pub item_count: Option<i64>,
}

/// One source's parsed records, written atomically.
#[derive(Debug, Clone, Copy)]
pub struct PaperBatch<'a> {
    pub source: SourceKind,
    pub papers: &'a [Paper],
    /// Time of the fetch: stamps upvote observations and `updated_at`.
    pub observed_at: DateTime<Utc>,
    /// Validators to save with the batch (same transaction).
    pub validators: &'a [HttpValidator],
}

/// What an upsert changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertStats {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub observations: u64,
}

/// One fetch run of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchLogEntry {
    /// Source name as on the CLI (`huggingface`, `arxiv`, `arxiv-api`).
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub ok: bool,
    pub error: Option<String>,
    pub parsed: u64,
    pub inserted: u64,
    pub updated: u64,
    pub observations: u64,
}

/// A storage failure as the fetcher sees it: reported, never inspected.
pub type StorageError = Box<dyn std::error::Error + Send + Sync>;

/// Where a fetcher keeps what it fetched. Each call is one statement or
/// one transaction of the store (see `store::papers`).
pub trait ListingStore: Send + Sync + std::fmt::Debug {
    /// The validators saved with the last processed body of `url`.
    fn http_validator<'a>(
        &'a self,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Option<HttpValidator>, StorageError>>;

    /// Merges one source's batch and its validators, atomically.
    fn upsert_papers<'a>(
        &'a self,
        batch: PaperBatch<'a>,
    ) -> BoxFuture<'a, Result<UpsertStats, StorageError>>;

    /// Appends one run to the fetch log.
    fn record_fetch<'a>(
        &'a self,
        entry: &'a FetchLogEntry,
    ) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Papers listed since `since` that no arXiv source has described yet.
    fn papers_missing_arxiv_metadata(
        &self,
        since: NaiveDate,
    ) -> BoxFuture<'_, Result<Vec<PaperId>, StorageError>>;
}
