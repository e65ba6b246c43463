//! Digest runs: one row per run with how it ended and its counts, and the
//! last run's summary (kept in `settings`) for `/healthz` and `/metrics`.
//! States and the summary are typed here, at the store's edge; the
//! table and the setting hold their text forms.

use super::{parse_ts, ts, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The setting that holds the last run's [`RunSummary`] as JSON.
const LAST_RUN: &str = "last_digest_run";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Nothing due is left.
    Done,
    /// The run found nothing more to claim, but deliveries are still due
    /// or leased (see the note): run again.
    Incomplete,
    /// The error budget was exhausted; remaining deliveries wait for the
    /// next run.
    PausedErrors,
    /// Shutdown was requested (in-flight sends were finished and
    /// recorded), the run failed, or its process died before it ended.
    Interrupted,
}

impl RunState {
    /// The text stored in `digest_runs.state` (a run in progress is
    /// `running`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::Incomplete => "incomplete",
            RunState::PausedErrors => "paused_errors",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// Counts of one digest run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub planned: u64,
    pub sent: u64,
    pub retried: u64,
    pub failed: u64,
    pub skipped: u64,
    pub unknown: u64,
}

impl RunCounts {
    /// Whether the run did anything at all.
    pub fn any(&self) -> bool {
        self.planned + self.sent + self.failed + self.retried + self.skipped + self.unknown > 0
    }
}

/// What the last run did, as `/healthz` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// When it finished.
    #[serde(with = "timestamp")]
    pub at: DateTime<Utc>,
    /// The instant it ran for (`digest --now` may differ from the clock).
    #[serde(rename = "for", with = "timestamp")]
    pub run_for: DateTime<Utc>,
    pub state: RunState,
    pub counts: RunCounts,
    pub note: Option<String>,
    /// Wall-clock seconds it took.
    pub seconds: f64,
    /// Bounces and complaints recorded in the 24 hours before it ran.
    pub bounces_last_24h: BounceTally,
}

/// Bounces and complaints in a period, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BounceTally {
    pub hard: i64,
    pub soft: i64,
    pub complaints: i64,
}

/// Timestamps as the store writes them everywhere.
mod timestamp {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::ts(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_ts(&s).map_err(serde::de::Error::custom)
    }
}

impl Store {
    /// Records a new run as `running`; a run still `running` belonged to
    /// a process that died, and becomes `interrupted`.
    pub async fn start_run(&self, now: DateTime<Utc>) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE digest_runs SET state = ? WHERE state = 'running'")
            .bind(RunState::Interrupted.as_str())
            .execute(&mut *tx)
            .await?;
        let id: i64 =
            sqlx::query_scalar("INSERT INTO digest_runs (started_at) VALUES (?) RETURNING id")
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn finish_run(
        &self,
        id: i64,
        counts: &RunCounts,
        state: RunState,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE digest_runs SET finished_at = ?, state = ?, planned = ?, sent = ?, retried = ?, \
             failed = ?, skipped = ?, unknown = ?, note = ? WHERE id = ?",
        )
        .bind(ts(now))
        .bind(state.as_str())
        .bind(counts.planned as i64)
        .bind(counts.sent as i64)
        .bind(counts.retried as i64)
        .bind(counts.failed as i64)
        .bind(counts.skipped as i64)
        .bind(counts.unknown as i64)
        .bind(note)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keeps `summary` as the last run's.
    pub async fn set_last_digest_run(&self, summary: &RunSummary) -> Result<()> {
        let json = serde_json::to_string(summary)
            .map_err(|e| StoreError::Corrupt(format!("run summary: {e}")))?;
        self.set_setting(LAST_RUN, &json).await
    }

    /// The last run's summary, if a run has finished.
    pub async fn last_digest_run(&self) -> Result<Option<RunSummary>> {
        self.setting(LAST_RUN)
            .await?
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("{LAST_RUN}: {e}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test]
    async fn the_last_run_summary_reads_back_as_written() {
        let (store, _dir) = crate::store::test_support::temp_store().await;
        assert_eq!(store.last_digest_run().await.unwrap(), None);
        let at = Utc.with_ymd_and_hms(2026, 6, 12, 9, 0, 1).unwrap();
        let summary = RunSummary {
            at,
            run_for: at - chrono::Duration::seconds(1),
            state: RunState::PausedErrors,
            counts: RunCounts {
                planned: 3,
                sent: 2,
                failed: 1,
                ..RunCounts::default()
            },
            note: Some("too many failures".into()),
            seconds: 0.25,
            bounces_last_24h: BounceTally {
                hard: 1,
                soft: 0,
                complaints: 2,
            },
        };
        store.set_last_digest_run(&summary).await.unwrap();
        assert_eq!(store.last_digest_run().await.unwrap(), Some(summary));
        // The stored text keeps the names `/healthz` shows.
        let json: serde_json::Value =
            serde_json::from_str(&store.setting(LAST_RUN).await.unwrap().unwrap()).unwrap();
        assert_eq!(json["for"], "2026-06-12T09:00:00.000Z");
        assert_eq!(json["state"], "paused_errors");
        assert_eq!(json["bounces_last_24h"]["complaints"], 2);
    }
}
