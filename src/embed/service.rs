//! The embedding service of a running paperboy: loads (or downloads) the
//! model without ever blocking start-up, embeds papers in the background
//! in bounded batches on a blocking thread, and caches topic vectors.
//!
//! The encoder is in memory only during a [`Pass`]: work that embeds
//! texts takes one (loading the model when it is not in memory), and when
//! the last pass ends the encoder is dropped. Ranking needs only the
//! model's identity, dimensions and family ([`ModelInfo`]), kept from the
//! first load, so a digest run sends with the model released.

use super::{hub, paper_text, EmbedError, Encoder, Family, Side};
use crate::config::SemanticConfig;
use crate::store::Store;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio_util::sync::CancellationToken;

/// Where the model stands. Reported in `/healthz` and `paperboy preview`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `rank.semantic.enabled = false`.
    Disabled,
    /// Not loaded yet (loading or downloading in the background).
    Loading,
    /// Loaded; ranking fuses meaning with words.
    Ready { identity: String },
    /// No model could be had; ranking is lexical. The reason says why.
    Unavailable(String),
}

impl Status {
    /// `disabled`, `loading`, `ready` or `unavailable`.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Disabled => "disabled",
            Status::Loading => "loading",
            Status::Ready { .. } => "ready",
            Status::Unavailable(_) => "unavailable",
        }
    }

    /// One line for people, e.g. "lexical only: model file … is missing".
    pub fn describe(&self) -> String {
        match self {
            Status::Disabled => "lexical only (rank.semantic.enabled = false)".into(),
            Status::Loading => "lexical only for now (the model is still loading)".into(),
            Status::Ready { identity } => format!("by words and meaning ({identity})"),
            Status::Unavailable(why) => format!("lexical only: {why}"),
        }
    }
}

/// Papers embedded per blocking call: small enough that the pass yields
/// often, large enough to batch the forward passes (a 2,000-paper day at
/// 256 tokens costs the same CPU and peak RSS with 16 as with 32; README).
pub const PAPER_BATCH: usize = 16;
/// Topic vectors kept in memory across runs.
const TOPIC_CACHE: usize = 50_000;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    embedded: AtomicU64,
    failures: AtomicU64,
    pending: AtomicU64,
    topics_embedded: AtomicU64,
}

/// What ranking needs of the model, known from its last load and kept
/// while the encoder itself is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// As [`Encoder::identity`]: stored vectors are keyed by it.
    pub identity: String,
    pub dims: usize,
    pub family: Family,
}

/// The encoder while passes use it.
#[derive(Default)]
struct Slot {
    encoder: Option<Arc<Encoder>>,
    passes: usize,
}

/// The encoder, loaded for as long as this lives; see the module docs.
/// Take one with [`Semantic::pass`] and embed through it as often as
/// needed (topics, then other texts of the same run); when the last pass
/// is dropped, so is the encoder.
pub struct Pass<'a> {
    semantic: &'a Semantic,
    /// Taken by `drop`.
    encoder: Option<Arc<Encoder>>,
}

impl Pass<'_> {
    pub fn encoder(&self) -> &Arc<Encoder> {
        self.encoder
            .as_ref()
            .expect("a live pass holds its encoder")
    }

    /// Unit vectors for `texts`, on a blocking thread, one encode per
    /// side at a time.
    pub async fn encode(
        &self,
        texts: Vec<String>,
        side: Side,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.semantic
            .encode(self.encoder().clone(), texts, side)
            .await
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut slot = self.semantic.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.passes -= 1;
        let ours = self.encoder.take();
        if slot.passes == 0 {
            drop(slot.encoder.take());
            if let Some(enc) = ours {
                release_when_dropped(enc);
            }
        }
    }
}

/// Drops the encoder on a blocking thread and returns its memory to the
/// OS there, once the last holder (an encode still running) lets go.
fn release_when_dropped(enc: Arc<Encoder>) {
    let release = move || {
        drop(enc);
        crate::alloc::release_freed();
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(release)),
        Err(_) => release(),
    }
}

/// See the module docs. One per process, shared through `App`.
pub struct Semantic {
    cfg: SemanticConfig,
    models_dir: PathBuf,
    status: RwLock<Status>,
    model: RwLock<Option<ModelInfo>>,
    slot: Mutex<Slot>,
    /// Only one load at a time.
    load_gate: tokio::sync::Mutex<()>,
    pass_running: AtomicBool,
    /// At most one blocking encode at a time: inference uses every core
    /// by itself, and the digest engine needs some too.
    encode_gate: Arc<tokio::sync::Semaphore>,
    /// Topics have their own gate: a short topic (the live preview) never
    /// waits behind a batch of papers.
    topic_gate: Arc<tokio::sync::Semaphore>,
    topics: Mutex<TopicLru>,
    counters: Counters,
}

impl std::fmt::Debug for Semantic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semantic")
            .field("status", &self.status())
            .finish()
    }
}

impl Semantic {
    /// No I/O: the model is loaded by [`Semantic::load`].
    pub fn new(cfg: SemanticConfig, models_dir: PathBuf) -> Semantic {
        let status = if cfg.enabled {
            Status::Loading
        } else {
            Status::Disabled
        };
        Semantic {
            cfg,
            models_dir,
            status: RwLock::new(status),
            model: RwLock::new(None),
            slot: Mutex::new(Slot::default()),
            load_gate: tokio::sync::Mutex::new(()),
            pass_running: AtomicBool::new(false),
            encode_gate: Arc::new(tokio::sync::Semaphore::new(1)),
            topic_gate: Arc::new(tokio::sync::Semaphore::new(1)),
            topics: Mutex::new(TopicLru::default()),
            counters: Counters::default(),
        }
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .map(|s| s.clone())
            .unwrap_or(Status::Loading)
    }

    /// The model's identity, dimensions and family once it has loaded;
    /// `None` without a model (lexical ranking).
    pub fn model(&self) -> Option<ModelInfo> {
        self.model.read().ok().and_then(|m| m.clone())
    }

    /// Whether the encoder is in memory now (a pass is running).
    pub fn resident(&self) -> bool {
        self.slot
            .lock()
            .map(|s| s.encoder.is_some())
            .unwrap_or(false)
    }

    /// The encoder for a piece of embedding work, loaded if it is not in
    /// memory (from the folder, which [`Semantic::load`] has checked or
    /// downloaded). Fails when the model never loaded or no longer does.
    pub async fn pass(&self) -> Result<Pass<'_>, EmbedError> {
        if self.model().is_none() {
            return Err(EmbedError::Unavailable(self.status().describe()));
        }
        let _gate = self.load_gate.lock().await;
        if let Some(pass) = self.join_pass() {
            return Ok(pass);
        }
        let enc = self.try_load().await?;
        self.remember(&enc);
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.passes += 1;
        slot.encoder = Some(enc.clone());
        Ok(Pass {
            semantic: self,
            encoder: Some(enc),
        })
    }

    /// A pass on the encoder already in memory, if it is.
    fn join_pass(&self) -> Option<Pass<'_>> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let encoder = slot.encoder.clone()?;
        slot.passes += 1;
        Some(Pass {
            semantic: self,
            encoder: Some(encoder),
        })
    }

    /// Keeps what ranking needs of a loaded encoder (its identity changes
    /// when the files did).
    fn remember(&self, enc: &Encoder) {
        let info = ModelInfo {
            identity: enc.identity().to_string(),
            dims: enc.dims(),
            family: enc.family(),
        };
        if let Ok(mut s) = self.status.write() {
            *s = Status::Ready {
                identity: info.identity.clone(),
            };
        }
        if let Ok(mut m) = self.model.write() {
            *m = Some(info);
        }
    }

    /// The folder the model is read from: `model_dir`, else the Hub
    /// model's folder under the data directory.
    pub fn model_folder(&self) -> PathBuf {
        match self.cfg.local_dir() {
            Some(d) => d,
            None => hub::model_folder(&self.models_dir, &self.cfg.model),
        }
    }

    /// Downloads the configured Hub model into the data directory unless
    /// it is already there (`paperboy model fetch`).
    pub async fn fetch_model(&self) -> Result<PathBuf, EmbedError> {
        let dir = hub::model_folder(&self.models_dir, &self.cfg.model);
        if !hub::is_complete(&dir) {
            let client = reqwest::Client::builder()
                .user_agent(concat!("paperboy/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(std::time::Duration::from_secs(20))
                .build()
                .map_err(|e| EmbedError::Download {
                    url: self.cfg.hub_url.to_string(),
                    reason: e.to_string(),
                })?;
            hub::fetch(&client, self.cfg.hub_url.as_str(), &self.cfg.model, &dir).await?;
        }
        Ok(dir)
    }

    /// Loads the model once (downloading it first when it comes from the
    /// Hub and is not there yet) to check it and learn its identity, then
    /// releases it: passes load it again when they need it. Never fails:
    /// the outcome is the status, and an unavailable model is logged once,
    /// as a warning.
    pub async fn load(&self) -> Status {
        let _gate = self.load_gate.lock().await;
        let current = self.status();
        if current != Status::Loading {
            return current;
        }
        let status = match self.try_load().await {
            Ok(enc) => {
                let identity = enc.identity().to_string();
                tracing::info!(model = %identity, dims = enc.dims(), "sentence-embedding model loaded");
                self.remember(&enc);
                release_when_dropped(enc);
                Status::Ready { identity }
            }
            Err(e) => {
                let why = e.to_string();
                tracing::warn!(error = %why, "no sentence-embedding model: ranking lexically");
                Status::Unavailable(why)
            }
        };
        if let Ok(mut s) = self.status.write() {
            *s = status.clone();
        }
        status
    }

    async fn try_load(&self) -> Result<Arc<Encoder>, EmbedError> {
        let (dir, name) = match self.cfg.local_dir() {
            Some(d) => (d.clone(), folder_name(&d)),
            None => (self.fetch_model().await?, self.cfg.model.clone()),
        };
        let (family, max_tokens) = (self.cfg.prefixes, self.cfg.max_tokens);
        let enc = tokio::task::spawn_blocking(move || {
            let enc = Encoder::load(&dir, &name, family, max_tokens);
            crate::alloc::release_freed();
            enc
        })
        .await
        .map_err(|e| EmbedError::Inference(format!("loading task failed: {e}")))??;
        Ok(Arc::new(enc))
    }

    /// Encodes on a blocking thread, one encode per side at a time.
    async fn encode(
        &self,
        enc: Arc<Encoder>,
        texts: Vec<String>,
        side: Side,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let gate = match side {
            Side::Passage => &self.encode_gate,
            Side::Query => &self.topic_gate,
        };
        let _permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let out = enc.encode(&refs, side);
            // The last holder frees the model here; the scratch tensors
            // were this thread's.
            drop(enc);
            crate::alloc::release_freed();
            out
        })
        .await
        .map_err(|e| EmbedError::Inference(format!("encoding task failed: {e}")))?
    }

    /// The first day of the embedding window.
    pub fn window_start(&self, now: DateTime<Utc>) -> NaiveDate {
        now.date_naive() - chrono::Duration::days(self.cfg.embed_days as i64)
    }

    /// Embeds every paper in the window that has no vector of the loaded
    /// model (new papers, or all of them after a model change), newest
    /// first, logging progress. Returns how many were embedded; 0 without
    /// a model or when another pass is already running.
    /// Stops between batches once `stop` is cancelled (shutdown).
    pub async fn embed_pending(
        &self,
        store: &Store,
        now: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> anyhow::Result<u64> {
        let Some(info) = self.model() else {
            return Ok(0);
        };
        if self.pass_running.swap(true, Ordering::AcqRel) {
            return Ok(0);
        }
        let result = self.embed_pass(store, &info.identity, now, stop).await;
        self.pass_running.store(false, Ordering::Release);
        result
    }

    /// Loads the encoder only when papers need it; it is released when
    /// the pass ends.
    async fn embed_pass(
        &self,
        store: &Store,
        known: &str,
        now: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> anyhow::Result<u64> {
        let since = self.window_start(now);
        let progress = store.embedding_progress(known, since).await?;
        let todo = progress.total - progress.done;
        self.counters.pending.store(todo, Ordering::Relaxed);
        if todo == 0 {
            return Ok(0);
        }
        let pass = self.pass().await?;
        // The files may have changed since the identity was learnt.
        let model = pass.encoder().identity().to_string();
        tracing::info!(model = %model, todo, done = progress.done, "embedding papers");
        let started = std::time::Instant::now();
        let mut embedded = 0u64;
        while !stop.is_cancelled() {
            let papers = store.papers_to_embed(&model, since, PAPER_BATCH).await?;
            if papers.is_empty() {
                break;
            }
            let texts: Vec<String> = papers.iter().map(paper_text).collect();
            let vectors = match pass.encode(texts, Side::Passage).await {
                Ok(v) => v,
                Err(e) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(e.into());
                }
            };
            let rows: Vec<_> = papers.into_iter().map(|p| p.id).zip(vectors).collect();
            store.save_paper_embeddings(&model, &rows, now).await?;
            embedded += rows.len() as u64;
            self.counters
                .embedded
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            self.counters
                .pending
                .store(todo.saturating_sub(embedded), Ordering::Relaxed);
            if embedded.is_multiple_of(PAPER_BATCH as u64 * 8) {
                tracing::info!(model = %model, embedded, todo, "embedding papers");
            }
        }
        tracing::info!(
            model = %model,
            embedded,
            secs = format!("{:.1}", started.elapsed().as_secs_f64()),
            "papers embedded"
        );
        Ok(embedded)
    }

    /// Vectors for topic texts (as ranking spells them out,
    /// gives them): from memory, else the database, else encoded now (and
    /// stored). Empty without a model; a failure is logged and leaves the
    /// topics lexical.
    pub async fn topic_vectors(
        &self,
        store: &Store,
        texts: &[String],
        now: DateTime<Utc>,
    ) -> HashMap<String, Arc<[f32]>> {
        let Some(info) = self.model() else {
            return HashMap::new();
        };
        let model = info.identity;
        let mut out = HashMap::with_capacity(texts.len());
        let mut missing: Vec<String> = Vec::new();
        if let Ok(mut lru) = self.topics.lock() {
            for t in texts {
                match lru.get(t) {
                    Some(v) => {
                        out.insert(t.clone(), v);
                    }
                    None if !missing.contains(t) => missing.push(t.clone()),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            return out;
        }
        let stored = store
            .topic_embeddings(&model, &missing)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read stored topic vectors");
                HashMap::new()
            });
        let to_encode: Vec<String> = missing
            .iter()
            .filter(|t| !stored.contains_key(*t))
            .cloned()
            .collect();
        let mut fresh: Vec<(String, Vec<f32>)> = Vec::new();
        if !to_encode.is_empty() {
            let encoded = match self.pass().await {
                Ok(pass) if pass.encoder().identity() == model => {
                    pass.encode(to_encode.clone(), Side::Query).await
                }
                // Vectors of another model would not compare with the
                // papers' of this one; the next run uses the new one.
                Ok(_) => Err(EmbedError::Inference("the model files changed".into())),
                Err(e) => Err(e),
            };
            match encoded {
                Ok(v) => fresh = to_encode.into_iter().zip(v).collect(),
                Err(e) => tracing::warn!(error = %e, "cannot embed topics: they rank lexically"),
            }
        }
        if !fresh.is_empty() {
            self.counters
                .topics_embedded
                .fetch_add(fresh.len() as u64, Ordering::Relaxed);
            if let Err(e) = store.save_topic_embeddings(&model, &fresh, now).await {
                tracing::warn!(error = %e, "cannot store topic vectors");
            }
        }
        if let Ok(mut lru) = self.topics.lock() {
            for (t, v) in stored.into_iter().chain(fresh) {
                let v: Arc<[f32]> = v.into();
                lru.put(t.clone(), v.clone());
                out.insert(t, v);
            }
        }
        out
    }

    /// Appends the embedding gauges and counters in Prometheus text format.
    pub fn write_metrics(&self, out: &mut String) {
        let status = self.status();
        let ready = u8::from(matches!(status, Status::Ready { .. }));
        let name = status.name();
        let _ = writeln!(
            out,
            "# HELP paperboy_semantic_ready 1 when the sentence-embedding model is loaded"
        );
        let _ = writeln!(out, "# TYPE paperboy_semantic_ready gauge");
        let _ = writeln!(out, "paperboy_semantic_ready{{status=\"{name}\"}} {ready}");
        let _ = writeln!(
            out,
            "# HELP paperboy_semantic_resident 1 while the encoder is in memory (an embedding pass)\n\
             # TYPE paperboy_semantic_resident gauge\npaperboy_semantic_resident {}",
            u8::from(self.resident())
        );
        let c = &self.counters;
        let values = [&c.embedded, &c.pending, &c.failures, &c.topics_embedded];
        let rows = METRICS
            .iter()
            .zip(values)
            .map(|((n, k, h), v)| (n, k, h, v));
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// The counters of [`Semantic::write_metrics`]: name, kind, help, in the
/// order of its values.
const METRICS: [(&str, &str, &str); 4] = [
    (
        "paperboy_papers_embedded_total",
        "counter",
        "Papers embedded since start",
    ),
    (
        "paperboy_papers_embed_pending",
        "gauge",
        "Papers in the window without a vector of the current model",
    ),
    (
        "paperboy_embed_failures_total",
        "counter",
        "Embedding batches that failed",
    ),
    (
        "paperboy_topics_embedded_total",
        "counter",
        "Distinct topics embedded since start",
    ),
];

/// A local folder's name stands in for the model name (it decides `auto`
/// prefixes, so keep the Hub name, e.g. `bge-small-en-v1.5`).
fn folder_name(dir: &std::path::Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "local-model".into())
}

/// A small least-recently-used map of topic vectors: `tick` orders uses,
/// and the oldest half is dropped when full (amortised O(1)).
#[derive(Default)]
struct TopicLru {
    map: HashMap<String, (u64, Arc<[f32]>)>,
    tick: u64,
}

impl TopicLru {
    fn get(&mut self, k: &str) -> Option<Arc<[f32]>> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(k).map(|e| {
            e.0 = tick;
            e.1.clone()
        })
    }

    fn put(&mut self, k: String, v: Arc<[f32]>) {
        if self.map.len() >= TOPIC_CACHE {
            let mut ticks: Vec<u64> = self.map.values().map(|e| e.0).collect();
            let mid = ticks.len() / 2;
            let cut = *ticks.select_nth_unstable(mid).1;
            self.map.retain(|_, e| e.0 > cut);
        }
        self.tick += 1;
        self.map.insert(k, (self.tick, v));
    }
}
