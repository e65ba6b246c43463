//! What each subscriber was already sent: the papers (never mailed to
//! them again) and the last listing day their latest digest covered
//! (where the next one's window starts).

use super::deliveries::parse_date;
use super::{Result, Store};
use crate::domain::SubscriberId;
use chrono::NaiveDate;
use std::collections::{HashMap, HashSet};

/// [`Store::last_covered_of`] on the caller's connection (planning asks
/// inside its transaction). One query; each lookup walks the subscriber's
/// deliveries newest first and stops at the first sent one.
pub(super) async fn last_covered_in(
    conn: &mut sqlx::SqliteConnection,
    ids: &[SubscriberId],
) -> Result<HashMap<SubscriberId, NaiveDate>> {
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT j.value, (SELECT d.window_until FROM deliveries d \
           WHERE d.subscriber_id = j.value AND d.state = 'sent' \
           ORDER BY d.digest_date DESC LIMIT 1) \
         FROM json_each(?) j",
    )
    .bind(super::json_ids(ids.iter().map(|i| i.0)))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .filter_map(|(id, until)| until.map(|u| (id, u)))
        .map(|(id, u)| Ok((SubscriberId(id), parse_date(&u)?)))
        .collect()
}

impl Store {
    /// Canonical ids of every paper already mailed to the subscriber.
    pub async fn sent_paper_ids(&self, id: SubscriberId) -> Result<HashSet<String>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT paper_id FROM sent_papers WHERE subscriber_id = ?")
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// [`Store::sent_paper_ids`] of many subscribers in one query; a
    /// subscriber who was never mailed has no entry.
    pub async fn sent_paper_ids_of(
        &self,
        ids: &[SubscriberId],
    ) -> Result<HashMap<SubscriberId, HashSet<String>>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT subscriber_id, paper_id FROM sent_papers \
             WHERE subscriber_id IN (SELECT value FROM json_each(?))",
        )
        .bind(super::json_ids(ids.iter().map(|i| i.0)))
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<SubscriberId, HashSet<String>> = HashMap::new();
        for (sub, paper) in rows {
            out.entry(SubscriberId(sub)).or_default().insert(paper);
        }
        Ok(out)
    }

    /// The last listing day the latest sent digest of each subscriber
    /// covered: where their next digest's window starts. A subscriber
    /// never mailed has no entry.
    pub async fn last_covered_of(
        &self,
        ids: &[SubscriberId],
    ) -> Result<HashMap<SubscriberId, NaiveDate>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.pool.acquire().await?;
        last_covered_in(&mut conn, ids).await
    }
}
