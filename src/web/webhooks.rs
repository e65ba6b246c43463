//! `POST /webhooks/{provider}[/{secret}]`: bounce and complaint
//! notifications from Amazon SES (via SNS), Postmark, SendGrid and
//! Mailgun.
//!
//! Every request must carry the shared secret (`bounces.webhooks.secret_*`)
//! in the path or the `X-Paperboy-Webhook-Secret` header, compared in
//! constant time; SNS messages must also carry a valid SNS signature, and
//! Mailgun's own signature is checked when its signing key is configured.
//! A refused or malformed request is answered 4xx, logged, and changes
//! nothing; a database failure is 500, so the provider retries.

use crate::app::App;
use crate::bounces::{self, providers, sns, BounceEvent, Outcome};
use crate::telemetry::Metrics;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Largest webhook body (SendGrid posts events in batches).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

pub const SECRET_HEADER: &str = "x-paperboy-webhook-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Ses,
    Postmark,
    Sendgrid,
    Mailgun,
}

impl Provider {
    fn parse(s: &str) -> Option<Provider> {
        Some(match s {
            "ses" => Provider::Ses,
            "postmark" => Provider::Postmark,
            "sendgrid" => Provider::Sendgrid,
            "mailgun" => Provider::Mailgun,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Provider::Ses => "ses",
            Provider::Postmark => "postmark",
            Provider::Sendgrid => "sendgrid",
            Provider::Mailgun => "mailgun",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("webhooks are disabled")]
    Disabled,
    #[error("unknown provider")]
    UnknownProvider,
    #[error("missing or wrong webhook secret")]
    Secret,
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Signature(String),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Disabled | Refusal::UnknownProvider => StatusCode::NOT_FOUND,
            Refusal::Secret => StatusCode::UNAUTHORIZED,
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::Signature(_) => StatusCode::FORBIDDEN,
        }
    }
}

fn secret_ok(app: &App, params: &HashMap<String, String>, headers: &HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(Some(expected)) = app.config.bounces.webhook_secret() else {
        return false;
    };
    let given = params
        .get("secret")
        .map(String::as_str)
        .or_else(|| headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    let expected = expected.expose().as_bytes();
    !expected.is_empty()
        && given.len() == expected.len()
        && bool::from(given.as_bytes().ct_eq(expected))
}

pub(super) async fn webhook(
    State(app): State<App>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let provider = params.get("provider").cloned().unwrap_or_default();
    match accept(&app, &params, &headers, &body).await {
        Ok(Ok(summary)) => (StatusCode::OK, axum::Json(summary)).into_response(),
        Ok(Err(e)) => {
            tracing::error!(provider = %provider, error = %format!("{e:#}"), "webhook could not be recorded");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; retry later",
            )
                .into_response()
        }
        Err(r) => {
            Metrics::inc(&app.metrics.bounces.webhooks_rejected);
            tracing::warn!(provider = %provider, reason = %r, "webhook rejected");
            (r.status(), r.to_string()).into_response()
        }
    }
}

/// Authenticates and parses the request, then records its events. The
/// outer error is a refusal (4xx), the inner one a failure to record
/// (500).
async fn accept(
    app: &App,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<anyhow::Result<Value>, Refusal> {
    if !app.config.bounces.webhooks.enabled {
        return Err(Refusal::Disabled);
    }
    let provider = params
        .get("provider")
        .and_then(|p| Provider::parse(p))
        .ok_or(Refusal::UnknownProvider)?;
    if !secret_ok(app, params, headers) {
        return Err(Refusal::Secret);
    }
    let v = providers::json(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let malformed = |e: providers::ProviderError| Refusal::Malformed(e.to_string());
    let events: Vec<BounceEvent> = match provider {
        Provider::Ses => match ses_message(app, &v).await? {
            Some(message) => providers::ses(&message).map_err(malformed)?,
            None => Vec::new(),
        },
        Provider::Postmark => providers::postmark(&v).map_err(malformed)?,
        Provider::Sendgrid => providers::sendgrid(&v).map_err(malformed)?,
        Provider::Mailgun => {
            if let Some(key) = app.config.bounces.mailgun_signing_key() {
                if !providers::mailgun_signature_ok(&v, key.expose()) {
                    return Err(Refusal::Signature(
                        "Mailgun signature does not verify".into(),
                    ));
                }
            }
            providers::mailgun(&v).map_err(malformed)?
        }
    };
    Ok(record_all(app, provider, &events).await)
}

/// Verifies an SNS message; returns the SES notification it carries, or
/// `None` for subscription messages (logged, with the URL that confirms
/// the subscription).
async fn ses_message(app: &App, v: &Value) -> Result<Option<Value>, Refusal> {
    let ty = sns::message_type(v).map_err(|e| Refusal::Malformed(e.to_string()))?;
    sns::verify(v, &app.config.bounces.webhooks.sns_cert_base_url)
        .await
        .map_err(|e| match e {
            sns::SnsError::Missing(_) | sns::SnsError::UnknownType(_) => {
                Refusal::Malformed(e.to_string())
            }
            _ => Refusal::Signature(e.to_string()),
        })?;
    match ty {
        sns::SnsType::Notification => {
            let text = v.get("Message").and_then(Value::as_str).unwrap_or("");
            serde_json::from_str(text)
                .map(Some)
                .map_err(|e| Refusal::Malformed(format!("SNS Message is not JSON: {e}")))
        }
        sns::SnsType::SubscriptionConfirmation => {
            tracing::warn!(
                topic = v.get("TopicArn").and_then(serde_json::Value::as_str).unwrap_or(""),
                subscribe_url = v.get("SubscribeURL").and_then(serde_json::Value::as_str).unwrap_or(""),
                "SNS subscription to confirm: open subscribe_url once (or confirm it in the AWS console)"
            );
            Ok(None)
        }
        sns::SnsType::UnsubscribeConfirmation => {
            tracing::warn!(
                topic = v
                    .get("TopicArn")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or(""),
                "SNS topic unsubscribed this endpoint"
            );
            Ok(None)
        }
    }
}

async fn record_all(
    app: &App,
    provider: Provider,
    events: &[BounceEvent],
) -> anyhow::Result<Value> {
    let mut counts: HashMap<&'static str, u64> = HashMap::new();
    for e in events {
        let key = match bounces::record(&app.bounces(), e).await? {
            Outcome::Applied(_) => "recorded",
            Outcome::Duplicate => "duplicates",
            Outcome::Unmatched => "unmatched",
            Outcome::Forged => "forged",
        };
        *counts.entry(key).or_default() += 1;
    }
    let n = |k| counts.get(k).copied().unwrap_or(0);
    Ok(json!({
        "provider": provider.name(),
        "events": events.len(),
        "recorded": n("recorded"),
        "duplicates": n("duplicates"),
        "unmatched": n("unmatched"),
        "forged": n("forged"),
    }))
}
