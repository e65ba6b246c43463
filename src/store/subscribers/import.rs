//! Bulk imports: many subscribers in a few multi-row statements.

use super::consent::ConsentInput;
use super::{bind_preferences, to_json, ManageHashFn, PREFERENCE_COLUMNS};
use crate::domain::{EmailAddress, Preferences, SubscriberId, SubscriberState};
use crate::store::{ts, Result, Store};
use chrono::{DateTime, Utc};

/// A subscriber to add in a bulk import.
#[derive(Debug, Clone)]
pub struct NewSubscriber {
    pub email: EmailAddress,
    pub prefs: Preferences,
    /// `Pending` (a confirmation mail is queued), `Active` or `Paused`.
    pub state: SubscriberState,
}

/// What one [`Store::import_subscribers`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub added: u64,
    /// Already subscribed (or earlier in the same import): left unchanged.
    pub existing: u64,
    /// On the suppression list, for any reason: never imported.
    pub suppressed: u64,
}

impl std::ops::AddAssign for ImportCounts {
    fn add_assign(&mut self, o: ImportCounts) {
        self.added += o.added;
        self.existing += o.existing;
        self.suppressed += o.suppressed;
    }
}

/// Rows per multi-row statement of an import (15 parameters each, far
/// below SQLite's bound-parameter limit).
const IMPORT_CHUNK: usize = 500;

/// `INSERT … VALUES (…), (…)` of `rows` rows of `cols` values into
/// `table (columns)`: one prepared statement per shape, reused by sqlx.
fn multi_insert(table_and_columns: &str, rows: usize, cols: usize) -> String {
    format!(
        "INSERT INTO {table_and_columns} VALUES {}",
        super::value_rows(rows, cols)
    )
}

/// The rows of `chunk` whose address is not suppressed, from one query.
async fn unsuppressed<'a>(
    tx: &mut super::WriteTx,
    chunk: &'a [NewSubscriber],
) -> Result<Vec<&'a NewSubscriber>> {
    let hashes: Vec<Vec<String>> = chunk.iter().map(|r| r.email.suppression_hashes()).collect();
    let all: Vec<String> = hashes.iter().flatten().cloned().collect();
    let found: std::collections::HashSet<String> = sqlx::query_scalar(
        "SELECT email_hash FROM suppressions WHERE email_hash IN (SELECT value FROM json_each(?))",
    )
    .bind(to_json(&all))
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    Ok(chunk
        .iter()
        .zip(&hashes)
        .filter(|(_, hs)| !hs.iter().any(|h| found.contains(h)))
        .map(|(r, _)| r)
        .collect())
}

/// Inserts the rows whose address is new; returns them with their ids.
async fn insert_new<'a>(
    tx: &mut super::WriteTx,
    rows: &[&'a NewSubscriber],
    now: DateTime<Utc>,
) -> Result<Vec<(SubscriberId, &'a NewSubscriber)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let now = ts(now);
    let sql = format!(
        "{} ON CONFLICT (email_canonical) DO NOTHING RETURNING id, email_canonical",
        multi_insert(
            &format!(
                "subscribers ({PREFERENCE_COLUMNS}, email, email_canonical, state, created_at, \
                 updated_at, confirmed_at)"
            ),
            rows.len(),
            15
        )
    );
    let mut q = sqlx::query(&sql);
    for r in rows {
        let confirmed = matches!(r.state, SubscriberState::Active | SubscriberState::Paused);
        q = bind_preferences(q, &r.prefs)
            .bind(r.email.as_str())
            .bind(r.email.canonical())
            .bind(r.state.as_str())
            .bind(now.clone())
            .bind(now.clone())
            .bind(confirmed.then(|| now.clone()));
    }
    let inserted = q.fetch_all(&mut **tx).await?;
    let mut by_canonical: std::collections::HashMap<&str, &'a NewSubscriber> =
        rows.iter().map(|r| (r.email.canonical(), *r)).collect();
    let mut out = Vec::with_capacity(inserted.len());
    for row in inserted {
        let id: i64 = sqlx::Row::try_get(&row, 0)?;
        let canonical: String = sqlx::Row::try_get(&row, 1)?;
        if let Some(r) = by_canonical.remove(canonical.as_str()) {
            out.push((SubscriberId(id), r));
        }
    }
    Ok(out)
}

/// Manage tokens, consent records and queued confirmations of freshly
/// imported subscribers: one multi-row statement each.
async fn insert_import_children(
    tx: &mut super::WriteTx,
    added: &[(SubscriberId, &NewSubscriber)],
    consent: &ConsentInput,
    manage_hash: ManageHashFn<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    if added.is_empty() {
        return Ok(());
    }
    let now = ts(now);
    let sql = multi_insert(
        "tokens (hash, subscriber_id, purpose, created_at)",
        added.len(),
        4,
    );
    let mut q = sqlx::query(&sql);
    for (id, _) in added {
        q = q
            .bind(manage_hash(*id, 0))
            .bind(id.0)
            .bind("manage")
            .bind(now.clone());
    }
    q.execute(&mut **tx).await?;
    let sql = multi_insert(
        "consents (subscriber_id, method, source, consent_text_hash, topics, ip, requested_at, \
         confirmed_at)",
        added.len(),
        8,
    );
    let mut q = sqlx::query(&sql);
    for (id, r) in added {
        let confirmed = r.state != SubscriberState::Pending;
        q = q
            .bind(id.0)
            .bind(consent.method.as_str())
            .bind(&consent.source)
            .bind(&consent.consent_text_hash)
            .bind(to_json(&r.prefs.topics))
            .bind(&consent.ip)
            .bind(now.clone())
            .bind(confirmed.then(|| now.clone()));
    }
    q.execute(&mut **tx).await?;
    let pending: Vec<SubscriberId> = added
        .iter()
        .filter(|(_, r)| r.state == SubscriberState::Pending)
        .map(|(id, _)| *id)
        .collect();
    if !pending.is_empty() {
        let sql = multi_insert(
            "outbox (subscriber_id, kind, next_attempt_at, created_at)",
            pending.len(),
            4,
        );
        let mut q = sqlx::query(&sql);
        for id in pending {
            q = q
                .bind(id.0)
                .bind("confirm")
                .bind(now.clone())
                .bind(now.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Bulk import in one write transaction: skips suppressed addresses
    /// (any reason; an import never lifts a suppression) and existing
    /// ones, and adds the rest with their manage token, an
    /// operator-import consent record and, for pending rows, a queued
    /// confirmation. Multi-row statements of [`IMPORT_CHUNK`] rows, so a
    /// call with thousands of rows is a handful of statements.
    pub async fn import_subscribers(
        &self,
        rows: &[NewSubscriber],
        consent: &ConsentInput,
        manage_hash: ManageHashFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<ImportCounts> {
        let mut counts = ImportCounts::default();
        let mut tx = self.begin_write().await?;
        for chunk in super::shaped_chunks(rows, IMPORT_CHUNK) {
            let fresh = unsuppressed(&mut tx, chunk).await?;
            counts.suppressed += (chunk.len() - fresh.len()) as u64;
            let added = insert_new(&mut tx, &fresh, now).await?;
            counts.existing += (fresh.len() - added.len()) as u64;
            counts.added += added.len() as u64;
            insert_import_children(&mut tx, &added, consent, manage_hash, now).await?;
        }
        tx.commit().await?;
        Ok(counts)
    }
}
