//! Listing sources: fetch papers from upstreams and hand them to the
//! store (through [`ListingStore`], so this module never sees SQL).
//!
//! | `--source` name | Upstream | What one run does |
//! |---|---|---|
//! | `huggingface` (`hf`) | HF `/api/daily_papers` | the day's list, all pages; without `--date` today (UTC) plus `sources.huggingface.refresh_days` previous days, to keep observing upvotes |
//! | `arxiv` | `rss.arxiv.org/{rss,atom}/{cats}` | the latest announcement for the configured categories, one request (`+`-joined) |
//! | `arxiv-api` | `export.arxiv.org/api/query` | backfills categories/DOI/… for recently listed papers no arXiv source has described yet (HF-only papers) |
//!
//! Parsers ([`parse_hf`], [`parse_arxiv_rss`], [`parse_arxiv_atom_feed`],
//! [`parse_arxiv_api`]) are pure functions of the body bytes. The
//! [`Fetcher`] owns the one polite HTTP client and writes each source's
//! whole run in one transaction, so a failed source leaves papers untouched
//! and never stops the others. Text is stored as text; renderers escape it.

mod arxiv_api;
mod arxiv_feed;
mod error;
mod hf;
mod http;
mod xml;

pub use arxiv_api::{parse_arxiv_api, ApiPage};
pub use arxiv_feed::{
    parse_arxiv_atom_feed, parse_arxiv_rss, split_creators, AnnounceType, FeedItem, FeedListing,
};
pub use error::SourceError;
pub use hf::parse_hf;
pub use http::{user_agent, ClientTuning};

use crate::config::{FeedFormat, SourcesConfig};
use crate::domain::fetch::{FetchLogEntry, HttpValidator, ListingStore, PaperBatch, UpsertStats};
use crate::domain::{Paper, PaperId, SourceKind};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use http::{Fetched, Gate, PoliteClient};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use url::Url;

/// A source as named on the command line (`paperboy fetch --source NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceName {
    HuggingFace,
    Arxiv,
    ArxivApi,
}

/// `--source` got a name that is not a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source {0:?}; expected one of: huggingface, arxiv, arxiv-api")]
pub struct UnknownSource(pub String);

impl SourceName {
    /// Every source, in the order a full fetch runs them (HF first so the
    /// API backfill sees today's HF papers).
    pub const ALL: [SourceName; 3] = [
        SourceName::HuggingFace,
        SourceName::Arxiv,
        SourceName::ArxivApi,
    ];

    /// Parses a CLI name: `huggingface` (or `hf`), `arxiv`, `arxiv-api`
    /// (or `arxiv_api`); case-insensitive.
    pub fn parse(s: &str) -> Result<SourceName, UnknownSource> {
        match s.trim().to_ascii_lowercase().as_str() {
            "huggingface" | "hf" => Ok(SourceName::HuggingFace),
            "arxiv" => Ok(SourceName::Arxiv),
            "arxiv-api" | "arxiv_api" => Ok(SourceName::ArxivApi),
            _ => Err(UnknownSource(s.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceName::HuggingFace => "huggingface",
            SourceName::Arxiv => "arxiv",
            SourceName::ArxivApi => "arxiv-api",
        }
    }

    fn kind(self) -> SourceKind {
        match self {
            SourceName::HuggingFace => SourceKind::HuggingFace,
            SourceName::Arxiv => SourceKind::ArxivFeed,
            SourceName::ArxivApi => SourceKind::ArxivApi,
        }
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SourceName {
    type Err = UnknownSource;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SourceName::parse(s)
    }
}

/// What to fetch. `source: None` runs every source enabled in config (an
/// explicitly named source runs even when disabled). `date: None` means
/// "now" (see the module table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchRequest {
    pub source: Option<SourceName>,
    pub date: Option<NaiveDate>,
}

/// How one source's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Not attempted, with the reason (e.g. `--date` for the arXiv feed).
    Skipped(String),
    /// `kind` is [`SourceError::kind`]; `message` names the source and the problem.
    Failed {
        kind: &'static str,
        message: String,
    },
}

/// One source's part of a [`FetchReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    pub source: SourceName,
    pub outcome: Outcome,
    /// Records parsed from the responses.
    pub parsed: u64,
    pub inserted: u64,
    pub updated: u64,
    pub observations: u64,
    /// HTTP requests that completed (after retries).
    pub requests: u64,
    /// Responses that were 304, or bodies identical to the last processed one.
    pub not_modified: u64,
}

impl SourceReport {
    fn new(source: SourceName) -> SourceReport {
        SourceReport {
            source,
            outcome: Outcome::Ok,
            parsed: 0,
            inserted: 0,
            updated: 0,
            observations: 0,
            requests: 0,
            not_modified: 0,
        }
    }

    pub fn is_ok(&self) -> bool {
        !matches!(self.outcome, Outcome::Failed { .. })
    }

    fn add(&mut self, s: UpsertStats) {
        self.inserted += s.inserted;
        self.updated += s.updated;
        self.observations += s.observations;
    }
}

impl fmt::Display for SourceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok => write!(
                f,
                "{}: ok, {} parsed, {} new, {} updated, {} upvote observations, {} requests ({} unchanged)",
                self.source, self.parsed, self.inserted, self.updated, self.observations, self.requests, self.not_modified
            ),
            Outcome::Skipped(why) => write!(f, "{}: skipped: {why}", self.source),
            Outcome::Failed { message, .. } => write!(f, "{}: FAILED: {message}", self.source),
        }
    }
}

/// The result of [`Fetcher::fetch`]: one report per source attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    pub sources: Vec<SourceReport>,
}

impl FetchReport {
    /// True when no source failed (skipped sources are fine).
    pub fn is_ok(&self) -> bool {
        self.sources.iter().all(SourceReport::is_ok)
    }
}

impl fmt::Display for FetchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.sources {
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

/// Cumulative per-source counters since start-up, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceCounters {
    pub runs_ok: u64,
    pub runs_failed: u64,
    /// Failures by [`SourceError::kind`].
    pub failures_by_kind: BTreeMap<&'static str, u64>,
    pub papers_inserted: u64,
    pub papers_updated: u64,
    pub observations: u64,
    pub requests: u64,
}

/// Fetches listings and stores them. Cheap to share behind an `Arc`; holds
/// one `reqwest::Client` for all sources.
#[derive(Debug)]
pub struct Fetcher {
    cfg: SourcesConfig,
    store: Arc<dyn ListingStore>,
    http: PoliteClient,
    counters: Mutex<BTreeMap<SourceName, SourceCounters>>,
}

/// Hard stop for HF paging even if every page comes back full: 50 × 100
/// items is far beyond any real day (~30–100 papers).
const MAX_HF_PAGES: u32 = 50;
/// Ids per export-API request (arXiv allows far more; short URLs are kinder).
const API_IDS_PER_REQUEST: usize = 50;

impl Fetcher {
    /// A fetcher with production timing ([`ClientTuning::default`]).
    pub fn new(
        cfg: &SourcesConfig,
        store: impl ListingStore + 'static,
    ) -> Result<Fetcher, SourceError> {
        Fetcher::with_tuning(cfg, store, ClientTuning::default())
    }

    /// As [`Fetcher::new`] with explicit retry/interval timing (tests).
    pub fn with_tuning(
        cfg: &SourcesConfig,
        store: impl ListingStore + 'static,
        tuning: ClientTuning,
    ) -> Result<Fetcher, SourceError> {
        Ok(Fetcher {
            cfg: cfg.clone(),
            store: Arc::new(store),
            http: PoliteClient::new(cfg, tuning)?,
            counters: Mutex::new(BTreeMap::new()),
        })
    }

    /// Runs the requested sources one after another and reports on each.
    ///
    /// `now` is the fetch time: it picks "today" (UTC) and stamps upvote
    /// observations and the fetch log. Never fails as a whole: a failing
    /// source is logged, counted, recorded in the fetch log and reported,
    /// and the next source still runs. A failed source writes no papers.
    pub async fn fetch(&self, req: FetchRequest, now: DateTime<Utc>) -> FetchReport {
        let names: Vec<SourceName> = match req.source {
            Some(n) => vec![n],
            None => SourceName::ALL
                .into_iter()
                .filter(|n| match n {
                    SourceName::HuggingFace => self.cfg.huggingface.enabled,
                    SourceName::Arxiv | SourceName::ArxivApi => self.cfg.arxiv.enabled,
                })
                .collect(),
        };
        let mut reports = Vec::new();
        for name in names {
            let mut report = SourceReport::new(name);
            let started = std::time::Instant::now();
            let result = match name {
                SourceName::HuggingFace => self.run_hf(req.date, now, &mut report).await,
                SourceName::Arxiv => match req.date {
                    Some(_) => {
                        report.outcome = Outcome::Skipped(
                            "the arXiv feed serves only the latest announcement; --date does not apply".into(),
                        );
                        Ok(())
                    }
                    None => self.run_arxiv_feed(now, &mut report).await,
                },
                SourceName::ArxivApi => self.run_arxiv_backfill(req.date, now, &mut report).await,
            };
            let finished = now + TimeDelta::from_std(started.elapsed()).unwrap_or_default();
            self.finish(report, result, now, finished, &mut reports)
                .await;
        }
        FetchReport { sources: reports }
    }

    /// Fetches export-API metadata for `ids` (any number; batched, spaced
    /// by the arXiv interval) and merges it into stored papers. Missing ids
    /// are ignored. Recorded in the fetch log as `arxiv-api`.
    pub async fn backfill_ids(&self, ids: &[PaperId], now: DateTime<Utc>) -> SourceReport {
        let mut report = SourceReport::new(SourceName::ArxivApi);
        let started = std::time::Instant::now();
        let result = self.api_ids(ids, now, &mut report).await;
        let finished = now + TimeDelta::from_std(started.elapsed()).unwrap_or_default();
        let mut out = Vec::new();
        self.finish(report, result, now, finished, &mut out).await;
        out.pop().expect("finish pushes one report")
    }

    /// Runs one export-API search (e.g. `cat:cs.CL`), newest submissions
    /// first, and merges up to `max_results` (≤ 2000) papers. They are
    /// metadata only: no listing day, so they do not become candidates.
    pub async fn backfill_query(
        &self,
        search_query: &str,
        max_results: u32,
        now: DateTime<Utc>,
    ) -> SourceReport {
        let mut report = SourceReport::new(SourceName::ArxivApi);
        let started = std::time::Instant::now();
        let result = async {
            let mut url = endpoint(self.cfg.arxiv.api_base_url.as_str(), "api/query")?;
            url.query_pairs_mut()
                .append_pair("search_query", search_query)
                .append_pair("sortBy", "submittedDate")
                .append_pair("sortOrder", "descending")
                .append_pair("start", "0")
                .append_pair("max_results", &max_results.clamp(1, 2000).to_string());
            let papers = self.api_page(&url, &mut report).await?;
            self.store_batch(SourceKind::ArxivApi, &papers, now, &[], &mut report)
                .await
        }
        .await;
        let finished = now + TimeDelta::from_std(started.elapsed()).unwrap_or_default();
        let mut out = Vec::new();
        self.finish(report, result, now, finished, &mut out).await;
        out.pop().expect("finish pushes one report")
    }

    /// Cumulative counters per source since this fetcher was built.
    pub fn counters(&self) -> BTreeMap<SourceName, SourceCounters> {
        self.counters.lock().expect("counters poisoned").clone()
    }

    async fn finish(
        &self,
        mut report: SourceReport,
        result: Result<(), SourceError>,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
        out: &mut Vec<SourceReport>,
    ) {
        let name = report.source;
        if let Err(e) = &result {
            report.outcome = Outcome::Failed {
                kind: e.kind(),
                message: format!("{name}: {e}"),
            };
            tracing::error!(source = %name, kind = e.kind(), error = %e, "fetch failed; stored papers untouched");
        } else {
            tracing::info!(source = %name, "{report}");
        }
        {
            let mut all = self.counters.lock().expect("counters poisoned");
            let c = all.entry(name).or_default();
            c.requests += report.requests;
            match &report.outcome {
                Outcome::Failed { kind, .. } => {
                    c.runs_failed += 1;
                    *c.failures_by_kind.entry(kind).or_default() += 1;
                }
                _ => {
                    c.runs_ok += 1;
                    c.papers_inserted += report.inserted;
                    c.papers_updated += report.updated;
                    c.observations += report.observations;
                }
            }
        }
        if !matches!(report.outcome, Outcome::Skipped(_)) {
            let entry = FetchLogEntry {
                source: name.as_str().to_string(),
                started_at: started,
                finished_at: finished,
                ok: report.is_ok(),
                error: match &report.outcome {
                    Outcome::Failed { message, .. } => Some(message.clone()),
                    _ => None,
                },
                parsed: report.parsed,
                inserted: report.inserted,
                updated: report.updated,
                observations: report.observations,
            };
            if let Err(e) = self.store.record_fetch(&entry).await {
                tracing::error!(source = %name, error = %e, "could not write the fetch log");
            }
        }
        out.push(report);
    }

    async fn run_hf(
        &self,
        date: Option<NaiveDate>,
        now: DateTime<Utc>,
        report: &mut SourceReport,
    ) -> Result<(), SourceError> {
        let hf = &self.cfg.huggingface;
        let days: Vec<NaiveDate> = match date {
            Some(d) => vec![d],
            None => {
                let today = now.date_naive();
                (0..=hf.refresh_days as i64)
                    .map(|i| today - TimeDelta::days(i))
                    .collect()
            }
        };
        let limit = hf.page_size.clamp(1, 100);
        let base = endpoint(hf.base_url.as_str(), "api/daily_papers")?;
        let gate = self.http.host_gate(&base);
        let mut papers = Vec::new();
        let mut validators = Vec::new();
        for day in days {
            for page in 0..MAX_HF_PAGES {
                let mut url = base.clone();
                url.query_pairs_mut()
                    .append_pair("date", &day.format("%Y-%m-%d").to_string())
                    .append_pair("limit", &limit.to_string())
                    .append_pair("p", &page.to_string());
                let full = match self.get(&gate, &url, http::JSON, report).await? {
                    Body::Unchanged(prev) => prev.item_count == Some(i64::from(limit)),
                    Body::New(bytes, mut v) => {
                        let items = parse_hf(&bytes, Some(day))?;
                        let n = items.len();
                        report.parsed += n as u64;
                        v.item_count = Some(n as i64);
                        validators.push(v);
                        papers.extend(items);
                        n >= limit as usize
                    }
                };
                // A short or empty page is the last one (HF's Link header
                // is unconfirmed, so this is the only reliable signal).
                if !full {
                    break;
                }
                if page + 1 == MAX_HF_PAGES {
                    tracing::warn!(%day, "Hugging Face paging stopped at the page limit");
                }
            }
        }
        self.store_batch(SourceKind::HuggingFace, &papers, now, &validators, report)
            .await
    }

    async fn run_arxiv_feed(
        &self,
        now: DateTime<Utc>,
        report: &mut SourceReport,
    ) -> Result<(), SourceError> {
        let a = &self.cfg.arxiv;
        let cats = a.categories.join("+");
        let url = endpoint(
            a.feed_base_url.as_str(),
            &format!("{}/{cats}", a.feed_format.as_str()),
        )?;
        let gate = self.http.arxiv_gate();
        match self.get(&gate, &url, http::XML, report).await? {
            Body::Unchanged(_) => Ok(()),
            Body::New(bytes, mut v) => {
                let listing = if a.feed_format == FeedFormat::Atom {
                    parse_arxiv_atom_feed(&bytes)?
                } else {
                    parse_arxiv_rss(&bytes)?
                };
                let papers: Vec<Paper> = listing.items.into_iter().map(|i| i.paper).collect();
                report.parsed += papers.len() as u64;
                v.item_count = Some(papers.len() as i64);
                self.store_batch(SourceKind::ArxivFeed, &papers, now, &[v], report)
                    .await
            }
        }
    }

    async fn run_arxiv_backfill(
        &self,
        date: Option<NaiveDate>,
        now: DateTime<Utc>,
        report: &mut SourceReport,
    ) -> Result<(), SourceError> {
        let since = date.unwrap_or_else(|| {
            now.date_naive() - TimeDelta::days(i64::from(self.cfg.huggingface.refresh_days))
        });
        let ids = self
            .store
            .papers_missing_arxiv_metadata(since)
            .await
            .map_err(SourceError::Store)?;
        self.api_ids(&ids, now, report).await
    }

    async fn api_ids(
        &self,
        ids: &[PaperId],
        now: DateTime<Utc>,
        report: &mut SourceReport,
    ) -> Result<(), SourceError> {
        let mut papers = Vec::new();
        for chunk in ids.chunks(API_IDS_PER_REQUEST) {
            let list: Vec<&str> = chunk.iter().map(PaperId::as_str).collect();
            let mut url = endpoint(self.cfg.arxiv.api_base_url.as_str(), "api/query")?;
            url.query_pairs_mut()
                .append_pair("id_list", &list.join(","))
                .append_pair("start", "0")
                .append_pair("max_results", &chunk.len().to_string());
            papers.extend(self.api_page(&url, report).await?);
        }
        self.store_batch(SourceKind::ArxivApi, &papers, now, &[], report)
            .await
    }

    /// One export-API request. The API is asked at most once a day per
    /// query, so its validators are not kept.
    async fn api_page(
        &self,
        url: &Url,
        report: &mut SourceReport,
    ) -> Result<Vec<Paper>, SourceError> {
        let gate = self.http.arxiv_gate();
        report.requests += 1;
        match self.http.get(&gate, url, http::XML, None).await? {
            Fetched::NotModified => Ok(Vec::new()),
            Fetched::Body { bytes, .. } => {
                let page = parse_arxiv_api(&bytes)?;
                report.parsed += page.papers.len() as u64;
                Ok(page.papers)
            }
        }
    }

    /// A conditional GET that also treats a body identical to the last
    /// processed one as unchanged (arXiv's ETag is its SHA-256, and 304
    /// support behind its CDN is unconfirmed). HF bodies are always
    /// processed: re-reading them is what records upvote observations.
    async fn get(
        &self,
        gate: &Gate,
        url: &Url,
        expect: http::Expect,
        report: &mut SourceReport,
    ) -> Result<Body, SourceError> {
        let prev = self
            .store
            .http_validator(url.as_str())
            .await
            .map_err(SourceError::Store)?;
        report.requests += 1;
        match self.http.get(gate, url, expect, prev.as_ref()).await? {
            Fetched::NotModified => {
                report.not_modified += 1;
                Ok(Body::Unchanged(prev.unwrap_or_default()))
            }
            Fetched::Body {
                bytes,
                etag,
                last_modified,
            } => {
                let sha = hex(&Sha256::digest(&bytes));
                let is_hf = report.source == SourceName::HuggingFace;
                if let Some(p) =
                    prev.filter(|p| !is_hf && p.body_sha256.as_deref() == Some(sha.as_str()))
                {
                    report.not_modified += 1;
                    return Ok(Body::Unchanged(p));
                }
                let v = HttpValidator {
                    url: url.to_string(),
                    etag,
                    last_modified,
                    body_sha256: Some(sha),
                    item_count: None,
                };
                Ok(Body::New(bytes, v))
            }
        }
    }

    async fn store_batch(
        &self,
        source: SourceKind,
        papers: &[Paper],
        now: DateTime<Utc>,
        validators: &[HttpValidator],
        report: &mut SourceReport,
    ) -> Result<(), SourceError> {
        let stats = self
            .store
            .upsert_papers(PaperBatch {
                source,
                papers,
                observed_at: now,
                validators,
            })
            .await
            .map_err(SourceError::Store)?;
        report.add(stats);
        debug_assert_eq!(source, report.source.kind());
        Ok(())
    }
}

enum Body {
    /// 304, or the same bytes as last time: nothing to do.
    Unchanged(HttpValidator),
    New(Vec<u8>, HttpValidator),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `base` (from config, with or without a trailing slash or a path
/// prefix) joined with a relative path.
fn endpoint(base: &str, path: &str) -> Result<Url, SourceError> {
    let mut base = Url::parse(base)
        .map_err(|e| SourceError::Request(format!("bad base URL {base:?}: {e}")))?;
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    base.join(path).map_err(|e| {
        SourceError::Request(format!("cannot build URL from {base} and {path:?}: {e}"))
    })
}

/// An arXiv category term (`cs.LG`, `hep-th`, `physics.chem-ph`,
/// `cond-mat.stat-mech`), as opposed to MSC/ACM classes (`35`, `I.2.7`) or
/// the empty terms of legacy ghost entries. Looser than
/// `domain::is_category`, which rejects real subject classes longer than
/// six characters.
pub(crate) fn is_arxiv_category(s: &str) -> bool {
    let (archive, subject) = match s.split_once('.') {
        Some((a, sub)) => (a, Some(sub)),
        None => (s, None),
    };
    let archive_ok = archive
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_lowercase)
        && archive.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    let subject_ok = subject.is_none_or(|sub| {
        sub.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && sub.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
    });
    s.len() <= 32 && archive_ok && subject_ok
}

/// `s` as a normalised `http`/`https` URL, or `None` for anything else
/// (`javascript:`, relative paths, garbage): upstream links end up in
/// emails and pages, so only web links are kept.
pub(crate) fn safe_http_url(s: &str) -> Option<String> {
    let u = Url::parse(s.trim()).ok()?;
    (matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
        .then(|| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_parse_case_insensitively_and_round_trip() {
        for n in SourceName::ALL {
            assert_eq!(SourceName::parse(n.as_str()), Ok(n));
            assert_eq!(SourceName::parse(&n.as_str().to_uppercase()), Ok(n));
        }
        assert_eq!(SourceName::parse("hf"), Ok(SourceName::HuggingFace));
        assert!(SourceName::parse("pwc")
            .unwrap_err()
            .to_string()
            .contains("arxiv-api"));
    }

    #[test]
    fn arxiv_categories_are_told_apart_from_other_classifications() {
        for ok in [
            "cs.LG",
            "hep-th",
            "physics.chem-ph",
            "cond-mat.stat-mech",
            "q-bio.SC",
            "math-ph",
        ] {
            assert!(is_arxiv_category(ok), "{ok}");
        }
        for bad in ["", "35", "I.2.7", "cs.", ".LG", "cs.L G", "Cs.LG"] {
            assert!(!is_arxiv_category(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints_keep_a_base_path_prefix() {
        assert_eq!(
            endpoint("https://huggingface.co", "api/daily_papers")
                .unwrap()
                .as_str(),
            "https://huggingface.co/api/daily_papers"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9/mirror", "rss/cs.LG+cs.AI")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/mirror/rss/cs.LG+cs.AI"
        );
    }
}
