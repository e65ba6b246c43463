//! The producer: claims due deliveries batch by batch, re-checks each
//! subscriber, picks and renders new digests (or reopens the stored bytes
//! of a retry), and stores the exact bytes before handing the messages to
//! the dispatcher.

use super::budget::Budget;
use super::view::{subject_and_preheader, DigestView, FeedbackUrls, PaperView};
use super::{fault_point, DigestPick, Picker, RunState, Sealer};
use crate::app::App;
use crate::config::UnknownPolicy;
use crate::deliver::{Composed, Outgoing};
use crate::domain::{EmailAddress, FeedbackAction, PaperId, SubscriberId, SubscriberState};
use crate::rank::ReaderFeedback;
use crate::store::deliveries::{AttemptEnd, ClaimedDelivery, Prepared};
use crate::store::runs::RunCounts;
use crate::store::subscribers::Subscriber;
use crate::telemetry::Metrics;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// A message ready to send for one claimed delivery.
pub(super) struct Ready {
    pub(super) claim: ClaimedDelivery,
    pub(super) subscriber: Subscriber,
    pub(super) composed: Composed,
    pub(super) papers: Vec<String>,
}

/// How many batches are prepared at once. A batch's database work
/// (claim, re-checks, storing the bytes) is serial and leaves the cores
/// idle; with two lanes one batch renders while the other talks to the
/// database, so rendering keeps every core busy (one lane leaves them
/// partly idle: `docs/performance.md`).
const LANES: usize = 2;

/// Claims and prepares batch after batch until nothing is due, storing
/// each batch's bytes before handing its messages to the dispatcher.
/// Runs [`LANES`] lanes at once; claims are atomic, so each batch belongs
/// to one lane.
pub(super) async fn produce(
    app: &App,
    picker: &dyn Picker,
    now: DateTime<Utc>,
    batch: u32,
    budget: &Mutex<Budget>,
    counts: &Mutex<RunCounts>,
    ready: tokio::sync::mpsc::Sender<Ready>,
) -> anyhow::Result<(RunState, Option<String>)> {
    let lane = Lane {
        app,
        picker,
        now,
        // The lanes share the run's batch: as many messages in flight as
        // with one lane (memory stays flat), in two halves.
        batch: batch.div_ceil(LANES as u32).max(1),
        budget,
        counts,
        sealer: Sealer::new(&app.links),
        loading: tokio::sync::Mutex::new(()),
    };
    // The first error ends the run: the other lane is dropped at its
    // next await, its open transaction rolled back, and rows it claimed
    // but never marked as started go back to `pending` with their lease.
    let ends = futures::future::try_join_all((0..LANES).map(|_| lane.run(ready.clone()))).await?;
    let mut end = (RunState::Done, None);
    for e in ends {
        // The most telling end wins: a pause, then a shutdown; `Done`
        // only when every lane found nothing to claim.
        end = match (e, end) {
            (e @ (RunState::PausedErrors, _), _) | (_, e @ (RunState::PausedErrors, _)) => e,
            (e @ (RunState::Interrupted, _), _) | (_, e @ (RunState::Interrupted, _)) => e,
            (e, _) => e,
        };
    }
    Ok(end)
}

/// What the lanes of one run share.
struct Lane<'a> {
    app: &'a App,
    picker: &'a dyn Picker,
    now: DateTime<Utc>,
    batch: u32,
    budget: &'a Mutex<Budget>,
    counts: &'a Mutex<RunCounts>,
    sealer: Sealer,
    /// One lane at a time builds missing window indexes, so two lanes
    /// never build the same one.
    loading: tokio::sync::Mutex<()>,
}

impl Lane<'_> {
    async fn run(
        &self,
        ready: tokio::sync::mpsc::Sender<Ready>,
    ) -> anyhow::Result<(RunState, Option<String>)> {
        let Lane {
            app,
            now,
            batch,
            budget,
            counts,
            ..
        } = *self;
        let cfg = &app.config.digest;
        let resend = cfg.unknown_policy == UnknownPolicy::Resend;
        let lease = cfg.lease;
        loop {
            if app.shutdown.is_cancelled() {
                return Ok((
                    RunState::Interrupted,
                    Some("shutdown requested".to_string()),
                ));
            }
            if let Some(why) = budget
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .paused()
                .map(str::to_string)
            {
                return Ok((RunState::PausedErrors, Some(why)));
            }
            let claims = app
                .store
                .claim_deliveries(now, now + lease, batch, resend)
                .await?;
            if claims.is_empty() {
                return Ok((RunState::Done, None));
            }
            fault_point("after_claim");

            let batch = self.prepare(claims).await?;
            {
                let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                c.skipped += batch.skipped;
                c.failed += batch.failed;
            }
            if batch.failed > 0 {
                Metrics::add(&app.metrics.mail_failed, batch.failed);
            }
            // The exact bytes are durable before the first byte goes out.
            app.store.prepare_deliveries(&batch.to_store).await?;
            for r in batch.ready {
                ready
                    .send(r)
                    .await
                    .map_err(|_| anyhow::anyhow!("the digest dispatcher stopped"))?;
            }
        }
    }
}

/// What a claimed delivery became before sending.
enum Prepare {
    Ready(Box<Ready>, Option<Prepared>),
    /// The message could not be built: to record as `failed`.
    Failed(i64, String),
}

/// What preparing a claimed batch produced.
struct PreparedBatch {
    /// The messages to send.
    ready: Vec<Ready>,
    /// The new ones among them, to store before any is sent.
    to_store: Vec<Prepared>,
    /// Deliveries recorded `skipped`.
    skipped: u64,
    /// Deliveries recorded `failed`: their message could not be built.
    failed: u64,
}

/// A claimed delivery not to send, and why.
type Skip = (i64, String);

/// A new digest to render: its delivery, subscriber, papers, and the
/// span its window covers.
struct Job {
    claim: ClaimedDelivery,
    sub: Subscriber,
    picks: Vec<DigestPick>,
    span: crate::domain::Span,
}

impl Lane<'_> {
    /// Prepares a claimed batch: re-checks each subscriber (one
    /// query each for the batch's subscribers, suppressions and sent
    /// papers), then reopens the stored message or picks, renders,
    /// composes and seals a new one. Rendering runs on the render threads
    /// in one chunk per thread.
    async fn prepare(&self, claims: Vec<ClaimedDelivery>) -> anyhow::Result<PreparedBatch> {
        let store = &self.app.store;
        let mut skips: Vec<Skip> = Vec::new();
        let live = self.recheck(claims, &mut skips).await?;
        let (mut ready, fresh) = self.reopen_stored(live)?;
        let jobs = self.pick_fresh(fresh, &mut skips).await?;
        let mut to_store = Vec::with_capacity(jobs.len());
        let mut failed = 0;
        for chunk in self.build_all(jobs).await {
            for p in chunk? {
                match p {
                    Prepare::Ready(r, p) => {
                        to_store.extend(p);
                        ready.push(*r);
                    }
                    Prepare::Failed(id, why) => {
                        store
                            .delivery_outcome(id, AttemptEnd::Failed, None, None, &why)
                            .await?;
                        failed += 1;
                    }
                }
            }
        }
        for (id, why) in &skips {
            store
                .delivery_outcome(*id, AttemptEnd::Skipped, None, None, why)
                .await?;
        }
        Ok(PreparedBatch {
            ready,
            to_store,
            skipped: skips.len() as u64,
            failed,
        })
    }

    /// The claims whose subscriber is still active and not suppressed,
    /// with the subscriber; the others go to `skips`.
    async fn recheck(
        &self,
        claims: Vec<ClaimedDelivery>,
        skips: &mut Vec<Skip>,
    ) -> anyhow::Result<Vec<(ClaimedDelivery, Subscriber)>> {
        let store = &self.app.store;
        let ids: Vec<SubscriberId> = claims.iter().map(|c| c.subscriber_id).collect();
        let mut subs: HashMap<SubscriberId, Subscriber> = store
            .subscribers_by_ids(&ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        let mut live = Vec::with_capacity(claims.len());
        for claim in claims {
            match subs.remove(&claim.subscriber_id) {
                None => skips.push((claim.id, "subscriber deleted".into())),
                Some(s) if s.state != SubscriberState::Active => {
                    skips.push((claim.id, "not active at send time".into()))
                }
                Some(s) => live.push((claim, s)),
            }
        }
        let emails: Vec<&EmailAddress> = live.iter().map(|(_, s)| &s.email).collect();
        let suppressed = store.suppressed_among(&emails).await?;
        let mut out = Vec::with_capacity(live.len());
        for ((claim, sub), suppressed) in live.into_iter().zip(suppressed) {
            if suppressed {
                skips.push((claim.id, "address suppressed".into()));
            } else {
                out.push((claim, sub));
            }
        }
        Ok(out)
    }

    /// Splits the claims into those with stored bytes (a retry or the
    /// single unknown-outcome resend: ready to send the identical bytes)
    /// and those that need a new digest.
    #[allow(clippy::type_complexity)]
    fn reopen_stored(
        &self,
        live: Vec<(ClaimedDelivery, Subscriber)>,
    ) -> anyhow::Result<(Vec<Ready>, Vec<(ClaimedDelivery, Subscriber)>)> {
        let app = self.app;
        let mut ready = Vec::with_capacity(live.len());
        let mut fresh = Vec::with_capacity(live.len());
        for (claim, sub) in live {
            let Some(sealed) = &claim.message else {
                fresh.push((claim, sub));
                continue;
            };
            let composed = Composed {
                envelope: app.composer.envelope_from(
                    &sub.email,
                    crate::bounces::envelope_sender(&app.bounces(), claim.id).as_deref(),
                )?,
                bytes: self.sealer.open(sealed)?,
                message_id: claim.message_id.clone().unwrap_or_default(),
            };
            let papers = claim.papers.clone();
            ready.push(Ready {
                claim,
                subscriber: sub,
                composed,
                papers,
            });
        }
        Ok((ready, fresh))
    }

    /// Picks each new digest's papers from its window's candidates (loaded
    /// first when missing), with the reader's feedback and never a paper
    /// already sent; a digest with nothing to carry goes to `skips`.
    async fn pick_fresh(
        &self,
        fresh: Vec<(ClaimedDelivery, Subscriber)>,
        skips: &mut Vec<Skip>,
    ) -> anyhow::Result<Vec<Job>> {
        let (app, now) = (self.app, self.now);
        let fresh_ids: Vec<SubscriberId> = fresh.iter().map(|(_, s)| s.id).collect();
        let mut sent = app.store.sent_paper_ids_of(&fresh_ids).await?;
        let mut feedback = crate::digest::reader_feedback::load(app, &fresh_ids, now).await?;
        let windows: Vec<crate::domain::Window> = fresh
            .iter()
            .map(|(claim, sub)| crate::digest::windows::claim_window(app, claim, sub))
            .collect();
        {
            let _turn = self.loading.lock().await;
            crate::digest::windows::ensure_loaded(app, self.picker, &windows, now).await?;
        }
        let mut jobs = Vec::with_capacity(fresh.len());
        for ((claim, sub), window) in fresh.into_iter().zip(windows) {
            let fb = feedback
                .remove(&sub.id)
                .unwrap_or_else(|| ReaderFeedback::none(now));
            let sent = sent.remove(&sub.id).unwrap_or_default();
            let picks = self
                .picker
                .pick_with_feedback(&window, &sub.preferences, &sent, &fb);
            if picks.is_empty() {
                let why = format!("no matching papers listed {}", window.describe());
                skips.push((claim.id, why));
            } else {
                let span = window.span();
                jobs.push(Job {
                    claim,
                    sub,
                    picks,
                    span,
                });
            }
        }
        Ok(jobs)
    }

    /// Builds every job's message on the render threads, one chunk per
    /// thread; each chunk's results in job order.
    async fn build_all(&self, mut jobs: Vec<Job>) -> Vec<anyhow::Result<Vec<Prepare>>> {
        let now = self.now;
        let threads = super::render_pool::threads();
        let mut chunks = Vec::new();
        while !jobs.is_empty() {
            let rest = jobs.split_off(jobs.len().saturating_sub(jobs.len().div_ceil(threads)));
            let (app, sealer) = (self.app.clone(), self.sealer.clone());
            chunks.push(super::render_pool::run(move || {
                rest.into_iter()
                    .map(|j| build_digest(&app, &sealer, j.claim, j.sub, &j.picks, j.span, now))
                    .collect::<anyhow::Result<Vec<Prepare>>>()
            }));
        }
        let built = futures::future::join_all(chunks).await;
        built
            .into_iter()
            .map(|chunk| chunk.and_then(|r| r))
            .collect()
    }
}

/// Renders, composes and seals one new digest. Blocking: CPU only.
#[allow(clippy::too_many_arguments)]
fn build_digest(
    app: &App,
    sealer: &Sealer,
    claim: ClaimedDelivery,
    sub: Subscriber,
    picks: &[DigestPick],
    span: crate::domain::Span,
    now: DateTime<Utc>,
) -> anyhow::Result<Prepare> {
    let content = render_digest(app, &sub, picks, claim.digest_date, span)?;
    let message_id = app
        .composer
        .digest_message_id(&app.links, sub.id, claim.digest_date);
    let token = app.links.manage_token(sub.id, sub.token_generation);
    let composed = match app
        .composer
        .compose(&Outgoing {
            to: &sub.email,
            content: &content,
            message_id,
            unsubscribe_url: Some(app.links.unsubscribe_url(&token)),
            date: Some(now.max(claim.due_at)),
        })
        .and_then(|mut c| {
            // With VERP on, the envelope sender names this delivery (the
            // message bytes are the same either way).
            if let Some(sender) = crate::bounces::envelope_sender(&app.bounces(), claim.id) {
                c.envelope = app.composer.envelope_from(&sub.email, Some(&sender))?;
            }
            Ok(c)
        }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(delivery = claim.id, subscriber = %sub.id, error = %e, "cannot build digest");
            return Ok(Prepare::Failed(claim.id, e.to_string()));
        }
    };
    let papers: Vec<String> = picks.iter().map(|p| p.paper.id.to_string()).collect();
    let prepared = Prepared {
        id: claim.id,
        message_id: composed.message_id.clone(),
        encrypted: sealer.seal(&composed.bytes)?,
        papers: papers.clone(),
    };
    Ok(Prepare::Ready(
        Box::new(Ready {
            claim,
            subscriber: sub,
            composed,
            papers,
        }),
        Some(prepared),
    ))
}

/// The three signed feedback links under a paper.
fn feedback_urls(app: &App, sub: &Subscriber, paper: &PaperId) -> FeedbackUrls {
    let url = |a| {
        let t = app
            .links
            .feedback_token(sub.id, sub.token_generation, paper, a);
        app.links.feedback_url(&t)
    };
    FeedbackUrls {
        more: url(FeedbackAction::More),
        not_for_me: url(FeedbackAction::NotForMe),
        save: url(FeedbackAction::Save),
    }
}

/// Renders one subscriber's digest; a digest over a week reads as one.
pub fn render_digest(
    app: &App,
    sub: &Subscriber,
    picks: &[DigestPick],
    date: NaiveDate,
    span: crate::domain::Span,
) -> anyhow::Result<crate::render::RenderedEmail> {
    let papers: Vec<PaperView> = picks
        .iter()
        .enumerate()
        .map(|(i, p)| {
            PaperView::new(i + 1, &p.paper, p.reason.clone()).with_feedback(feedback_urls(
                app,
                sub,
                &p.paper.id,
            ))
        })
        .collect();
    let fallback = picks.iter().all(|p| p.topic.is_none());
    let topics: Vec<Option<&str>> = picks.iter().map(|p| p.topic.as_deref()).collect();
    let (subject, preheader) = subject_and_preheader(&papers, &topics, span);
    let token = app.links.manage_token(sub.id, sub.token_generation);
    let topics = &sub.preferences.topics;
    let view = DigestView {
        heading: crate::digest::view::heading(fallback, span),
        subject,
        preheader,
        date: date.format("%A, %-d %B %Y").to_string(),
        papers,
        topics: topics.clone(),
        fallback,
        manage_url: app.links.manage_url(&token),
        unsubscribe_url: app.links.unsubscribe_url(&token),
        home_url: app.links.home_url(),
        why: format!(
            "You receive this because you subscribed to paperboy digests{}. Change or stop them any time with the links above.",
            if topics.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                format!(" on {}", crate::rank::name_list(&names, names.len(), ""))
            }
        ),
    };
    Ok(app.renderer.email("digest", &view)?)
}
