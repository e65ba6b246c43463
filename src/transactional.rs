//! The worker that drains the transactional outbox: confirmation mails
//! and "already subscribed" notes. Web requests only insert outbox rows;
//! this worker renders, sends and records, so no request ever waits on
//! SMTP and a queued mail survives a crash.
//!
//! Confirm tokens are minted here, at send time, and only their hash is
//! stored, so neither the outbox nor any other table holds a usable link.

use crate::app::App;
use crate::deliver::outcome::{classify, AttemptContext, Outcome};
use crate::deliver::{Composed, DeliverError, Outgoing};
use crate::domain::{SubscriberState, Token};
use crate::store::outbox::{OutboxItem, OutboxKind};
use crate::store::subscribers::{Subscriber, SuppressionReason};
use crate::store::StoreError;
use crate::telemetry::Metrics;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

/// Attempts before a transactional mail is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// How long a claimed row is leased to this worker.
const LEASE: Duration = Duration::minutes(2);

/// Runs until the app's shutdown token is cancelled. An in-flight send is
/// finished and recorded before returning.
pub async fn run(app: App) {
    loop {
        if app.shutdown.is_cancelled() {
            break;
        }
        match drain_once(&app).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "outbox worker: store error"),
        }
        let wait = match app.store.outbox_next_due().await {
            Ok(Some(t)) => (t - app.now())
                .to_std()
                .unwrap_or_default()
                .min(std::time::Duration::from_secs(30)),
            _ => std::time::Duration::from_secs(30),
        };
        tokio::select! {
            _ = app.shutdown.cancelled() => break,
            _ = app.outbox_wake.notified() => {}
            _ = tokio::time::sleep(wait.max(std::time::Duration::from_millis(50))) => {}
        }
    }
    tracing::debug!("outbox worker stopped");
}

/// Claims and processes one due row. Returns whether there was one.
pub async fn drain_once(app: &App) -> Result<bool, StoreError> {
    let Some(item) = app.store.claim_outbox(app.now(), LEASE).await? else {
        return Ok(false);
    };
    process(app, item).await?;
    Ok(true)
}

/// Sends everything due now (CLI and tests).
pub async fn drain_all(app: &App) -> Result<usize, StoreError> {
    let mut n = 0;
    while drain_once(app).await? {
        n += 1;
    }
    Ok(n)
}

/// One outbox row, end to end: re-check, render, compose, send, record.
async fn process(app: &App, item: OutboxItem) -> Result<(), StoreError> {
    let Some(sub) = still_wanted(app, &item).await? else {
        return Ok(());
    };
    let now = app.now();
    let mail = mail_for(app, &item, &sub, now).await?;
    let composed = match compose(app, &item, &sub, &mail, now) {
        Ok(c) => c,
        Err(why) => return app.store.outbox_failed(item.id, &why).await,
    };
    // The claim is committed; no transaction is open across the send.
    let result = app.transport.send(&composed).await;
    record_outcome(app, &item, &sub, mail.template, &result).await
}

/// The row's subscriber, re-checked at send time: they may have
/// confirmed, left or been suppressed since the row was queued. `None`
/// once the row is recorded as skipped.
async fn still_wanted(app: &App, item: &OutboxItem) -> Result<Option<Subscriber>, StoreError> {
    let sub = match app.store.subscriber(item.subscriber_id).await {
        Ok(s) => s,
        Err(StoreError::NotFound) => {
            app.store.outbox_skipped(item.id, "subscriber gone").await?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let applies = match item.kind {
        OutboxKind::Confirm => sub.state == SubscriberState::Pending,
        OutboxKind::ManageLink => {
            matches!(sub.state, SubscriberState::Active | SubscriberState::Paused)
        }
    };
    if !applies {
        app.store
            .outbox_skipped(item.id, "no longer applicable")
            .await?;
        return Ok(None);
    }
    if let Some(reason) = app.store.suppression(&sub.email).await? {
        if !reason.lifted_by_own_opt_in() {
            app.store
                .outbox_skipped(item.id, "address suppressed")
                .await?;
            return Ok(None);
        }
    }
    Ok(Some(sub))
}

/// A transactional mail before rendering.
struct TransactionalMail {
    /// The email template's name.
    template: &'static str,
    data: serde_json::Value,
    /// For the List-Unsubscribe header (a settings-link mail only).
    unsubscribe_url: Option<String>,
}

/// What the row's kind of mail says. A confirmation mints its token now
/// and stores only the token's hash.
async fn mail_for(
    app: &App,
    item: &OutboxItem,
    sub: &Subscriber,
    now: DateTime<Utc>,
) -> Result<TransactionalMail, StoreError> {
    Ok(match item.kind {
        OutboxKind::Confirm => {
            let token = Token::generate();
            let ttl = app.config.subscribe.confirm_ttl;
            app.store
                .insert_confirm_token(sub.id, &token.hash(), now, now + ttl)
                .await?;
            let data = json!({
                "preheader": "Open the link and press Confirm to start your paperboy digest.",
                "confirm_url": app.links.confirm_url(&token),
                "ttl_hours": ttl.num_hours(),
                "topics": sub.preferences.topics,
                "home_url": app.links.home_url(),
            });
            TransactionalMail {
                template: "confirm",
                data,
                unsubscribe_url: None,
            }
        }
        OutboxKind::ManageLink => {
            let manage = app.links.manage_token(sub.id, sub.token_generation);
            let unsubscribe = app.links.unsubscribe_url(&manage);
            let data = json!({
                "preheader": "Your paperboy settings link.",
                "manage_url": app.links.manage_url(&manage),
                "unsubscribe_url": unsubscribe,
                "home_url": app.links.home_url(),
            });
            TransactionalMail {
                template: "manage_link",
                data,
                unsubscribe_url: Some(unsubscribe),
            }
        }
    })
}

/// The message to send, or why it cannot be built.
fn compose(
    app: &App,
    item: &OutboxItem,
    sub: &Subscriber,
    mail: &TransactionalMail,
    now: DateTime<Utc>,
) -> Result<Composed, String> {
    let content = app.renderer.email(mail.template, &mail.data).map_err(|e| {
        tracing::error!(outbox = item.id, error = %e, "cannot render transactional mail");
        e.to_string()
    })?;
    let id_data = [item.id.to_be_bytes(), item.attempts.to_be_bytes()].concat();
    let message_id = app.composer.message_id(
        &app.links,
        "transactional",
        &id_data,
        mail.template.replace('_', "-").as_str(),
    );
    app.composer
        .compose(&Outgoing {
            to: &sub.email,
            content: &content,
            message_id,
            unsubscribe_url: mail.unsubscribe_url.clone(),
            date: Some(now),
        })
        .map_err(|e| e.to_string())
}

/// Records the relay's answer: sent, retried with backoff, or failed (a
/// permanent rejection of the address also suppresses it).
async fn record_outcome(
    app: &App,
    item: &OutboxItem,
    sub: &Subscriber,
    template: &str,
    result: &Result<(), DeliverError>,
) -> Result<(), StoreError> {
    // No stored bytes to resend identically: a stall is an ordinary retry
    // (at worst one confirmation mail arrives twice).
    let c = classify(
        result,
        AttemptContext {
            may_retry: item.attempts < MAX_ATTEMPTS,
            expired: false,
            unknown_on_timeout: false,
        },
    );
    match c.outcome {
        Outcome::Sent => {
            Metrics::inc(&app.metrics.mail_sent);
            tracing::info!(outbox = item.id, subscriber = %sub.id, kind = template, "transactional mail sent");
            app.store.outbox_sent(item.id, app.now()).await
        }
        Outcome::Retry { .. } | Outcome::Unknown => {
            Metrics::inc(&app.metrics.mail_retried);
            // 10 s, 20 s, 40 s … capped at 10 minutes.
            let secs = (10i64 << (item.attempts - 1).clamp(0, 10)).min(600);
            tracing::warn!(outbox = item.id, subscriber = %sub.id, error = %c.detail, retry_in_secs = secs, "transactional mail will be retried");
            app.store
                .outbox_retry(item.id, &c.detail, app.now() + Duration::seconds(secs))
                .await
        }
        Outcome::Failed { .. } | Outcome::Suppress => {
            Metrics::inc(&app.metrics.mail_failed);
            tracing::warn!(outbox = item.id, subscriber = %sub.id, error = %c.detail, "transactional mail failed");
            if c.outcome == Outcome::Suppress {
                app.store
                    .suppress(&sub.email, SuppressionReason::HardBounce, app.now())
                    .await?;
            }
            app.store.outbox_failed(item.id, &c.detail).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{App, Overrides};
    use crate::config::Config;
    use crate::deliver::Transport;
    use crate::domain::{EmailAddress, Preferences};
    use crate::store::subscribers::{ConfirmLimits, ConsentInput, ConsentMethod, SubscribeRequest};
    use lettre::transport::stub::AsyncStubTransport;

    async fn app_with(stub: AsyncStubTransport) -> (App, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![(
            "PAPERBOY__DATABASE__PATH".to_string(),
            dir.path().join("t.sqlite").display().to_string(),
        )];
        let config = Config::load_with_env(None, env).unwrap();
        let overrides = Overrides {
            transport: Some(Transport::Stub(stub)),
            ..Default::default()
        };
        (App::build(config, overrides).await.unwrap(), dir)
    }

    async fn request(app: &App, email: &str) {
        let prefs = Preferences {
            topics: vec!["RAG".into()],
            ..Preferences::new(
                5,
                chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                chrono_tz::UTC,
            )
        };
        let consent = ConsentInput {
            method: ConsentMethod::WebForm,
            source: "test".into(),
            consent_text_hash: "h".into(),
            ip: None,
        };
        let limits = ConfirmLimits {
            min_interval: Duration::minutes(15),
            per_day: 3,
            global_per_hour: 100,
        };
        let links = app.links.clone();
        let hash = move |id, g| links.manage_token_hash(id, g);
        app.store
            .request_subscription(
                SubscribeRequest {
                    email: &EmailAddress::parse(email).unwrap(),
                    prefs: &prefs,
                    consent: &consent,
                    choices: &[],
                },
                &limits,
                &hash,
                app.now(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_queued_confirmation_is_sent_once_through_the_stub_transport() {
        let stub = AsyncStubTransport::new_ok();
        let (app, _dir) = app_with(stub.clone()).await;
        request(&app, "stub@example.org").await;
        assert_eq!(drain_all(&app).await.unwrap(), 1);
        assert_eq!(drain_all(&app).await.unwrap(), 0, "nothing left to send");
        let sent = stub.messages().await;
        assert_eq!(sent.len(), 1);
        let (envelope, body) = &sent[0];
        assert_eq!(envelope.to()[0].to_string(), "stub@example.org");
        assert!(body.contains("/confirm/"));
        assert!(body.contains("Subject: Confirm your paperboy subscription"));
        assert_eq!(app.store.outbox_counts().await.unwrap().sent, 1);
    }

    #[tokio::test]
    async fn a_failing_transport_leaves_the_mail_queued_for_retry() {
        let (app, _dir) = app_with(AsyncStubTransport::new_error()).await;
        request(&app, "retry@example.org").await;
        assert_eq!(drain_all(&app).await.unwrap(), 1);
        let counts = app.store.outbox_counts().await.unwrap();
        assert_eq!((counts.queued, counts.sent, counts.failed), (1, 0, 0));
    }
}
