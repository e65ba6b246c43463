//! Reading subscribers out: pages, lists, counts and a subscriber's
//! data export.

use super::consent::ConsentRow;
use super::{Subscriber, SubscriberRow, SUBSCRIBER_COLUMNS};
use crate::domain::{SubscriberId, SubscriberState};
use crate::store::{ts, Result, Store};

impl Store {
    /// Everything held about one subscriber, for self-service export.
    pub async fn export_subscriber(&self, id: SubscriberId) -> Result<serde_json::Value> {
        let sub = self.subscriber(id).await?;
        let consents: Vec<ConsentRow> = sqlx::query_as(
            "SELECT method, source, consent_text_hash, topics, ip, requested_at, confirmed_at \
                 FROM consents WHERE subscriber_id = ? ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let consents: Vec<serde_json::Value> = consents
            .into_iter()
            .map(|(method, source, hash, topics, ip, req, conf)| {
                serde_json::json!({
                    "method": method, "source": source, "consent_text_sha256": hash,
                    "topics": serde_json::from_str::<serde_json::Value>(&topics).unwrap_or_default(),
                    "ip": ip, "requested_at": req, "confirmed_at": conf,
                })
            })
            .collect();
        let mut export = serde_json::json!({
            "subscriber": {
                "email": sub.email.as_str(),
                "state": sub.state,
                "created_at": ts(sub.created_at),
                "confirmed_at": sub.confirmed_at.map(ts),
                "unsubscribed_at": sub.unsubscribed_at.map(ts),
                "preferences": sub.preferences,
            },
            "consents": consents,
        });
        let history = self.delivery_history_json(id).await?;
        export["deliveries"] = history;
        export["bounces"] = self.bounce_history_json(id).await?;
        export["feedback"] = self.feedback_export_json(id).await?;
        export["pending_choices"] = self.pending_choices_export_json(id).await?;
        Ok(export)
    }

    /// Delivery history for exports: date, state, when sent, papers.
    async fn delivery_history_json(&self, id: SubscriberId) -> Result<serde_json::Value> {
        let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT digest_date, state, sent_at, papers FROM deliveries \
             WHERE subscriber_id = ? ORDER BY digest_date",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(serde_json::Value::Array(
            rows.into_iter()
                .map(|(date, state, sent_at, papers)| {
                    serde_json::json!({
                        "digest_date": date, "state": state, "sent_at": sent_at,
                        "papers": papers.and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok()),
                    })
                })
                .collect(),
        ))
    }

    /// Subscribers (optionally in one state) with `id > after`, in id
    /// order, at most `limit`.
    pub(crate) async fn subscribers_page(
        &self,
        state: Option<&str>,
        after: SubscriberId,
        limit: u32,
    ) -> Result<Vec<Subscriber>> {
        let rows: Vec<SubscriberRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers \
             WHERE id > ? AND (? IS NULL OR state = ?) ORDER BY id LIMIT ?"
        ))
        .bind(after.0)
        .bind(state)
        .bind(state)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Subscriber::try_from).collect()
    }

    /// All subscribers, optionally in one state, ordered by id.
    pub async fn list_subscribers(
        &self,
        state: Option<SubscriberState>,
    ) -> Result<Vec<Subscriber>> {
        let rows: Vec<SubscriberRow> = match state {
            Some(s) => {
                sqlx::query_as(&format!(
                    "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE state = ? ORDER BY id"
                ))
                .bind(s.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!(
                    "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(Subscriber::try_from).collect()
    }

    /// Subscriber counts by state, for /metrics.
    pub async fn count_by_state(&self) -> Result<Vec<(SubscriberState, i64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM subscribers GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok(SubscriberState::ALL
            .into_iter()
            .map(|s| {
                let n = rows
                    .iter()
                    .find(|(st, _)| st == s.as_str())
                    .map_or(0, |(_, n)| *n);
                (s, n)
            })
            .collect())
    }
}
