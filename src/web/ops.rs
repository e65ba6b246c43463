//! Operator endpoints (`/healthz`, `/metrics`) and the 404 page.

use super::page::{message, Result};
use super::WebState;
use crate::app::App;
use crate::telemetry::write_gauge;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub(super) async fn healthz(State(web): State<WebState>) -> Response {
    let db = web.store.ping().await;
    let last_fetch = web
        .store
        .last_fetch()
        .await
        .ok()
        .flatten()
        .map(crate::store::ts);
    let last_digest = web.store.setting("last_digest_run").await.ok().flatten();
    let backlog = delivery_backlog(&web).await;
    // Stuck rows (a lease outlived its run) degrade the status but not the
    // HTTP code: the daemon still works, and the next run recovers them.
    let stuck = backlog.is_some_and(|b| b.stuck > 0);
    let mailbox = mailbox_health(&web);
    let mailbox_degraded = mailbox
        .as_ref()
        .is_some_and(|m| !m["degraded_since"].is_null());
    let body = json!({
        "status": if db && !stuck && !mailbox_degraded { "ok" } else { "degraded" },
        "database": db,
        "bounce_mailbox": mailbox,
        "deliveries": backlog,
        "last_fetch": last_fetch,
        "last_digest_run": last_digest.and_then(|s| serde_json::from_str::<Value>(&s).ok()),
        "sending_paused": crate::bounces::sending_paused(&web.bounces(), web.now()).await.ok().flatten(),
        "ranking": semantic_health(&web),
    });
    let status = if db {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// The bounce mailbox's polls for `/healthz`, when it is enabled:
/// `degraded_since` is set while polls fail or leave mail unread (the
/// status is then `degraded`, still 200: digests go on).
fn mailbox_health(app: &App) -> Option<Value> {
    if !app.config.bounces.mailbox.enabled {
        return None;
    }
    let h = app.metrics.bounces.mailbox_health();
    Some(json!({
        "state": h.state(),
        "degraded_since": h.degraded_since().map(crate::store::ts),
        "last_success": h.last_success.map(crate::store::ts),
        "last_error": h.last_error,
        "unread_left": h.unread_left,
    }))
}

/// Deliveries due, in flight, stuck and unknown now; `None` when the
/// database cannot say.
async fn delivery_backlog(app: &App) -> Option<crate::store::deliveries::DeliveryBacklog> {
    let resend = app.config.digest.unknown_policy == crate::config::UnknownPolicy::Resend;
    app.store.delivery_backlog(app.now(), resend).await.ok()
}

/// The embedding model's state for `/healthz`: lexical ranking is a
/// degraded mode worth seeing, not a failure (the status stays 200).
fn semantic_health(app: &App) -> Value {
    let s = app.semantic.status();
    json!({
        "semantic": s.name(),
        "detail": s.describe(),
    })
}

pub(super) async fn metrics(State(web): State<WebState>) -> Result<Response> {
    let mut out = String::new();
    write_subscriber_gauges(&web, &mut out).await?;
    let outbox = web.store.outbox_counts().await?;
    write_gauge(
        &mut out,
        "paperboy_transactional_mail",
        "Transactional mail (confirmations) by state.",
        "state",
        &[
            ("queued", outbox.queued),
            ("sent", outbox.sent),
            ("failed", outbox.failed),
        ],
    );
    write_digest_gauges(&web, &mut out).await?;
    web.metrics.write_counters(&mut out);
    web.metrics.bounces.write(&mut out);
    if web.config.bounces.mailbox.enabled {
        web.metrics.bounces.write_mailbox(&mut out);
    }
    web.semantic.write_metrics(&mut out);
    write_fetch_counters(&mut out, &web.fetcher.counters());
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// The digest deliveries by state, the backlog, and the counts of the
/// most recent run.
async fn write_digest_gauges(app: &App, out: &mut String) -> Result<()> {
    let deliveries = app.store.delivery_counts().await?;
    let values: Vec<(&str, i64)> = crate::store::deliveries::DeliveryState::ALL
        .iter()
        .map(|st| {
            let n = deliveries
                .iter()
                .find(|(s, _)| s == st)
                .map_or(0, |(_, n)| *n);
            (st.as_str(), n)
        })
        .collect();
    write_gauge(
        out,
        "paperboy_digest_deliveries",
        "Digest deliveries by state.",
        "state",
        &values,
    );
    if let Some(b) = delivery_backlog(app).await {
        write_gauge(
            out,
            "paperboy_digest_backlog",
            "Digest deliveries not done now: due, in flight, stuck (lease expired), unknown outcome.",
            "kind",
            &[
                ("due", b.due as i64),
                ("in_flight", b.in_flight as i64),
                ("stuck", b.stuck as i64),
                ("unknown", b.unknown as i64),
            ],
        );
    }
    if let Some(last) = app.store.setting("last_digest_run").await? {
        if let Ok(v) = serde_json::from_str::<Value>(&last) {
            let c = &v["counts"];
            let field = |k: &str| c[k].as_i64().unwrap_or(0);
            write_gauge(
                out,
                "paperboy_last_digest_run",
                "Counts of the most recent digest run.",
                "outcome",
                &[
                    ("planned", field("planned")),
                    ("sent", field("sent")),
                    ("retried", field("retried")),
                    ("failed", field("failed")),
                    ("skipped", field("skipped")),
                    ("unknown", field("unknown")),
                ],
            );
        }
    }
    Ok(())
}

/// Subscribers by state, a suppressed one counted as `suppressed` and not
/// in its subscription state (nothing is sent to it), and the suppressed
/// by reason.
async fn write_subscriber_gauges(app: &App, out: &mut String) -> Result<()> {
    let by_state = app.store.count_by_state().await?;
    let suppressed = app.store.suppressed_by_state().await?;
    let of = |st| {
        suppressed
            .iter()
            .find(|(s, _)| *s == st)
            .map_or(0, |(_, n)| *n)
    };
    let mut values: Vec<(&str, i64)> = by_state
        .iter()
        .map(|(s, n)| (s.as_str(), n - of(*s)))
        .collect();
    values.push(("suppressed", suppressed.iter().map(|(_, n)| n).sum()));
    write_gauge(
        out,
        "paperboy_subscribers",
        "Subscribers by state; a suppressed address counts as suppressed only.",
        "state",
        &values,
    );
    let by_reason = app.store.suppressed_by_reason().await?;
    let values: Vec<(&str, i64)> = by_reason.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    write_gauge(
        out,
        "paperboy_subscribers_suppressed",
        "Suppressed subscribers by reason.",
        "reason",
        &values,
    );
    Ok(())
}

fn write_fetch_counters(
    out: &mut String,
    counters: &std::collections::BTreeMap<
        crate::sources::SourceName,
        crate::sources::SourceCounters,
    >,
) {
    use std::fmt::Write;
    let mut family =
        |name: &str, help: &str, get: &dyn Fn(&crate::sources::SourceCounters) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (source, c) in counters {
                let _ = writeln!(out, "{name}{{source=\"{}\"}} {}", source.as_str(), get(c));
            }
        };
    family(
        "paperboy_source_fetches_ok_total",
        "Successful fetches per source.",
        &|c| c.runs_ok,
    );
    family(
        "paperboy_source_fetches_failed_total",
        "Failed fetches per source.",
        &|c| c.runs_failed,
    );
    family(
        "paperboy_source_papers_inserted_total",
        "New papers stored per source.",
        &|c| c.papers_inserted,
    );
    family(
        "paperboy_source_requests_total",
        "HTTP requests per source.",
        &|c| c.requests,
    );
    let _ = writeln!(
        out,
        "# HELP paperboy_source_failures_total Failed fetches by source and kind.\n# TYPE paperboy_source_failures_total counter"
    );
    for (source, c) in counters {
        for (kind, n) in &c.failures_by_kind {
            let _ = writeln!(
                out,
                "paperboy_source_failures_total{{source=\"{}\",kind=\"{kind}\"}} {n}",
                source.as_str()
            );
        }
    }
}

pub(super) async fn not_found(State(web): State<WebState>) -> Result<Response> {
    message(
        &web,
        StatusCode::NOT_FOUND,
        "Page not found",
        &["There is nothing at this address."],
        Some(("Go to the home page", web.links.home_url())),
        false,
    )
}
