//! Reader feedback: per (subscriber, paper) the latest action and its
//! time. Rows go with the subscriber (ON DELETE CASCADE), so deleting an
//! account or `subscribers remove` leaves none behind.

use super::papers::{row_to_paper, COLUMNS};
use super::{parse_ts, ts, Result, Store, StoreError};
use crate::domain::{FeedbackAction, FeedbackEntry, Paper, PaperId, SubscriberId};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// What recording an action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// New feedback, or a different action replacing the previous one.
    Changed,
    /// The same action was already recorded: nothing changed (a second
    /// POST of the same link counts once and keeps the first time).
    Unchanged,
}

fn entry(paper: String, action: String, at: String) -> Result<FeedbackEntry> {
    Ok(FeedbackEntry {
        paper: PaperId::from_stored(paper),
        action: FeedbackAction::parse(&action)
            .ok_or_else(|| StoreError::Corrupt(format!("feedback action {action:?}")))?,
        at: parse_ts(&at)?,
    })
}

impl Store {
    /// Records `action` on `paper` for a subscriber, replacing an earlier
    /// different action. `NotFound` when the paper is not stored.
    pub async fn record_feedback(
        &self,
        id: SubscriberId,
        paper: &PaperId,
        action: FeedbackAction,
        now: DateTime<Utc>,
    ) -> Result<Recorded> {
        let mut tx = self.begin_write().await?;
        let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM papers WHERE id = ?")
            .bind(paper.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(StoreError::NotFound);
        }
        let done = sqlx::query(
            "INSERT INTO feedback (subscriber_id, paper_id, action, at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (subscriber_id, paper_id) DO UPDATE \
             SET action = excluded.action, at = excluded.at WHERE action <> excluded.action",
        )
        .bind(id.0)
        .bind(paper.as_str())
        .bind(action.as_str())
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if done.rows_affected() > 0 {
            Recorded::Changed
        } else {
            Recorded::Unchanged
        })
    }

    /// Removes the subscriber's feedback on `paper` (undo, or the remove
    /// button on the settings page). True when there was some.
    pub async fn remove_feedback(&self, id: SubscriberId, paper: &PaperId) -> Result<bool> {
        let done = self
            .write_one(
                sqlx::query("DELETE FROM feedback WHERE subscriber_id = ? AND paper_id = ?")
                    .bind(id.0)
                    .bind(paper.as_str()),
            )
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The subscriber's feedback on one paper, if any.
    pub async fn feedback_on(
        &self,
        id: SubscriberId,
        paper: &PaperId,
    ) -> Result<Option<FeedbackEntry>> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT paper_id, action, at FROM feedback WHERE subscriber_id = ? AND paper_id = ?",
        )
        .bind(id.0)
        .bind(paper.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|(p, a, t)| entry(p, a, t)).transpose()
    }

    /// All of a subscriber's feedback, newest first.
    pub async fn feedback_of(&self, id: SubscriberId) -> Result<Vec<FeedbackEntry>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT paper_id, action, at FROM feedback WHERE subscriber_id = ? \
             ORDER BY at DESC, paper_id",
        )
        .bind(id.0)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(|(p, a, t)| entry(p, a, t)).collect()
    }

    /// The feedback of many subscribers in one query, each newest first;
    /// subscribers without feedback are absent.
    pub async fn feedback_of_many(
        &self,
        ids: &[SubscriberId],
    ) -> Result<HashMap<SubscriberId, Vec<FeedbackEntry>>> {
        let mut out: HashMap<SubscriberId, Vec<FeedbackEntry>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT subscriber_id, paper_id, action, at FROM feedback \
             WHERE subscriber_id IN (SELECT value FROM json_each(?)) \
             ORDER BY subscriber_id, at DESC, paper_id",
        )
        .bind(super::json_ids(ids.iter().map(|i| i.0)))
        .fetch_all(self.pool())
        .await?;
        for (sub, p, a, t) in rows {
            out.entry(SubscriberId(sub))
                .or_default()
                .push(entry(p, a, t)?);
        }
        Ok(out)
    }

    /// The feedback of these subscribers with the papers it is about,
    /// each paper loaded once however many readers it has (for a digest
    /// batch or a settings page). Newest first per subscriber.
    pub async fn feedback_with_papers(
        &self,
        ids: &[SubscriberId],
    ) -> Result<HashMap<SubscriberId, Vec<(FeedbackEntry, Arc<Paper>)>>> {
        let entries = self.feedback_of_many(ids).await?;
        let wanted: std::collections::HashSet<&PaperId> =
            entries.values().flatten().map(|e| &e.paper).collect();
        let wanted: Vec<&PaperId> = wanted.into_iter().collect();
        let papers: HashMap<PaperId, Arc<Paper>> = self
            .papers_by_ids(&wanted)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), Arc::new(p)))
            .collect();
        Ok(entries
            .into_iter()
            .map(|(id, list)| {
                let list = list
                    .into_iter()
                    .filter_map(|e| {
                        let p = papers.get(&e.paper)?.clone();
                        Some((e, p))
                    })
                    .collect();
                (id, list)
            })
            .collect())
    }

    /// The stored papers with these ids (feedback targets may be older
    /// than the day's candidates); unknown ids are absent.
    pub async fn papers_by_ids(&self, ids: &[&PaperId]) -> Result<Vec<Paper>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(&ids.iter().map(|i| i.as_str()).collect::<Vec<_>>())
            .expect("a list of strings serialises");
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM papers WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id"
        ))
        .bind(list)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| row_to_paper(r).map(|(p, _)| p))
            .collect()
    }

    /// Feedback for the JSON export: paper, title, action, time.
    pub(crate) async fn feedback_export_json(&self, id: SubscriberId) -> Result<serde_json::Value> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT f.paper_id, p.title, f.action, f.at FROM feedback f \
             JOIN papers p ON p.id = f.paper_id WHERE f.subscriber_id = ? \
             ORDER BY f.at, f.paper_id",
        )
        .bind(id.0)
        .fetch_all(self.pool())
        .await?;
        Ok(serde_json::Value::Array(
            rows.into_iter()
                .map(|(paper, title, action, at)| {
                    serde_json::json!({ "paper": paper, "title": title, "action": action, "at": at })
                })
                .collect(),
        ))
    }
}

impl Store {
    /// The preview choices waiting for confirmation, for the JSON export:
    /// paper, title, action.
    pub(crate) async fn pending_choices_export_json(
        &self,
        id: SubscriberId,
    ) -> Result<serde_json::Value> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.paper_id, p.title, c.action FROM pending_choices c \
             JOIN papers p ON p.id = c.paper_id WHERE c.subscriber_id = ? ORDER BY c.paper_id",
        )
        .bind(id.0)
        .fetch_all(self.pool())
        .await?;
        Ok(serde_json::Value::Array(
            rows.into_iter()
                .map(|(paper, title, action)| {
                    serde_json::json!({ "paper": paper, "title": title, "action": action })
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SourceKind;
    use crate::store::papers::PaperBatch;
    use crate::store::subscribers::SuppressionReason;
    use crate::store::test_support::temp_store;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 14, 8, 0, 0).unwrap()
    }

    async fn subscriber(store: &Store, email: &str) -> SubscriberId {
        crate::store::test_support::active_subscriber(store, now(), email).await
    }

    async fn papers(store: &Store, ids: &[&str]) -> Vec<PaperId> {
        let papers: Vec<Paper> = ids
            .iter()
            .map(|i| {
                let (id, _) = PaperId::parse_arxiv(i).unwrap();
                Paper::new(id, &format!("Paper {i}"), "An abstract.")
            })
            .collect();
        store
            .upsert_papers(PaperBatch {
                source: SourceKind::ArxivFeed,
                papers: &papers,
                observed_at: now(),
                validators: &[],
            })
            .await
            .unwrap();
        papers.into_iter().map(|p| p.id).collect()
    }

    #[tokio::test]
    async fn recording_the_same_action_twice_counts_once() {
        let (store, _dir) = temp_store().await;
        let sub = subscriber(&store, "a@example.org").await;
        let ids = papers(&store, &["2606.00001"]).await;
        let later = now() + chrono::Duration::hours(1);
        let first = store
            .record_feedback(sub, &ids[0], FeedbackAction::More, now())
            .await
            .unwrap();
        let second = store
            .record_feedback(sub, &ids[0], FeedbackAction::More, later)
            .await
            .unwrap();
        assert_eq!((first, second), (Recorded::Changed, Recorded::Unchanged));
        let all = store.feedback_of(sub).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].at, now(), "the repeat keeps the first time");
        // A different action replaces it.
        store
            .record_feedback(sub, &ids[0], FeedbackAction::NotForMe, later)
            .await
            .unwrap();
        let all = store.feedback_of(sub).await.unwrap();
        assert_eq!((all.len(), all[0].action), (1, FeedbackAction::NotForMe));
    }

    #[tokio::test]
    async fn undo_removes_the_feedback() {
        let (store, _dir) = temp_store().await;
        let sub = subscriber(&store, "a@example.org").await;
        let ids = papers(&store, &["2606.00001"]).await;
        store
            .record_feedback(sub, &ids[0], FeedbackAction::Save, now())
            .await
            .unwrap();
        assert!(store.remove_feedback(sub, &ids[0]).await.unwrap());
        assert!(!store.remove_feedback(sub, &ids[0]).await.unwrap());
        assert_eq!(store.feedback_on(sub, &ids[0]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn feedback_on_an_unknown_paper_is_refused() {
        let (store, _dir) = temp_store().await;
        let sub = subscriber(&store, "a@example.org").await;
        let (ghost, _) = PaperId::parse_arxiv("2606.99999").unwrap();
        let r = store
            .record_feedback(sub, &ghost, FeedbackAction::More, now())
            .await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }

    #[tokio::test]
    async fn feedback_is_exported_and_removed_with_the_subscriber() {
        let (store, _dir) = temp_store().await;
        let sub = subscriber(&store, "a@example.org").await;
        let other = subscriber(&store, "b@example.org").await;
        let ids = papers(&store, &["2606.00001", "2606.00002"]).await;
        store
            .record_feedback(sub, &ids[0], FeedbackAction::More, now())
            .await
            .unwrap();
        store
            .record_feedback(sub, &ids[1], FeedbackAction::NotForMe, now())
            .await
            .unwrap();
        store
            .record_feedback(other, &ids[1], FeedbackAction::Save, now())
            .await
            .unwrap();
        let export = store.export_subscriber(sub).await.unwrap();
        let fb = export["feedback"].as_array().unwrap();
        assert_eq!(fb.len(), 2);
        assert_eq!(fb[0]["paper"], "2606.00001");
        assert_eq!(fb[0]["title"], "Paper 2606.00001");
        assert_eq!(fb[0]["action"], "more");
        assert_eq!(fb[1]["action"], "not_for_me");

        store
            .delete_subscriber(sub, SuppressionReason::Deleted, now())
            .await
            .unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM feedback WHERE subscriber_id = ?")
            .bind(sub.0)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0);
        let many = store.feedback_of_many(&[sub, other]).await.unwrap();
        assert_eq!(many.len(), 1);
        assert_eq!(many[&other][0].action, FeedbackAction::Save);
    }

    #[tokio::test]
    async fn papers_by_ids_returns_the_stored_ones() {
        let (store, _dir) = temp_store().await;
        let ids = papers(&store, &["2606.00001", "2606.00002"]).await;
        let (ghost, _) = PaperId::parse_arxiv("2606.99999").unwrap();
        let got = store.papers_by_ids(&[&ids[1], &ghost]).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, ids[1]);
    }
}
