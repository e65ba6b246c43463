//! The only module that speaks SQL.
//!
//! SQLite through sqlx, configured for one daemon per file: WAL, `synchronous`
//! NORMAL (or FULL by config), a busy timeout, foreign keys on, and every
//! transaction that may write opened with `BEGIN IMMEDIATE` so a
//! read-then-write never dies with `SQLITE_BUSY_SNAPSHOT`. Submodules
//! group statements by table family; all of them return domain types.

use crate::domain::Synchronous;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub mod confirm_sends;
pub mod deliveries;
pub mod embeddings;
pub mod events;
pub mod feedback;
pub mod outbox;
pub mod papers;
pub mod retention;
pub mod runs;
pub mod schedule;
mod sent;
pub mod subscribers;
pub mod suppressions;
mod writer;

pub use writer::WriteTx;
use writer::Writer;

/// Errors at the storage boundary. Callers branch on `NotFound` and
/// `Conflict`; everything else is a failure to report.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The address is on the suppression list (the reason); only its
    /// owner's own confirmed opt-in lifts that.
    #[error("the address is suppressed ({0}); only its owner's own confirmed opt-in lifts that")]
    Suppressed(&'static str),
    #[error(
        "another paperboy process is using {0}; stop it first (only one daemon may own a database)"
    )]
    Locked(PathBuf),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    fn from_unique(e: sqlx::Error, what: &str) -> StoreError {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(what.to_string())
            }
            _ => StoreError::Database(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Handle to the database. Cheap to clone.
///
/// Reads go through a pool of `database.max_connections` connections;
/// writes go through one write connection of their own, one at a time
/// ([`writer`]: why one, and how a write turn is handed on). Reads never
/// wait behind a write for a connection. The busy timeout still covers
/// other processes (the CLI beside a daemon).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    writer: Writer,
    path: Arc<PathBuf>,
}

/// Page cache of the write connection, in KiB: it holds the hot pages of a
/// digest run (delivery rows and their indexes, the sent-papers index).
///
/// Page caches are most of what grows with the number of subscribers in a
/// digest run: they fill as the database grows, up to their size. One
/// writer of 16 MiB and 1 MiB per read connection ([`READER_CACHE_KIB`])
/// cap them at 24 MiB in all; a larger writer cache bought no speed
/// (`docs/performance.md`).
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// Page cache of each read connection, in KiB (SQLite's default is 2 MiB):
/// reads look rows up by key, and eight connections each caching the same
/// upper index pages would spend 16 MiB on duplicates.
const READER_CACHE_KIB: i64 = 1024;

/// WAL size, in pages, at which a commit checkpoints (SQLite's default is
/// 1,000). A digest run rewrites the same hot pages (delivery rows, their
/// state index) in many small commits; a checkpoint copies each page once,
/// however often it was rewritten, so a larger WAL copies far fewer pages.
/// 8,000 pages is 32 MB of WAL at most between checkpoints.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 8_000;

/// Exclusive ownership of a database by one daemon. Dropping it
/// releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes `<database>.lock`, or fails with [`StoreError::Locked`] when
    /// another process holds it. The OS releases the lock when the
    /// process dies, so a crash never leaves a stale lock behind.
    pub fn acquire(db_path: &Path) -> Result<InstanceLock> {
        let mut path = db_path.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        ensure_parent(&path)?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(InstanceLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(StoreError::Locked(db_path.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// How to open the database. The store takes these rather than the
/// daemon's configuration, so tools and tests open it with plain values;
/// the daemon converts `[database]` into them (`app.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The database file; its directory is created when missing.
    pub path: PathBuf,
    /// How long a connection waits for another process's lock.
    pub busy_timeout: Duration,
    /// Connections in the read pool.
    pub max_connections: u32,
    pub synchronous: Synchronous,
}

impl Store {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub async fn open(options: impl Into<StoreOptions>) -> Result<Store> {
        let cfg: StoreOptions = options.into();
        ensure_parent(&cfg.path)?;
        let sync = match cfg.synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        };
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&cfg.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(cfg.busy_timeout)
            .foreign_keys(true);
        // The write connection first, alone: it switches a new file to WAL
        // (an exclusive lock; SQLite answers a second connection switching
        // at the same moment with "database is locked" without calling the
        // busy handler) and runs the migrations before any reader connects.
        let writer = Writer::connect(
            opts.clone()
                .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                .pragma(
                    "wal_autocheckpoint",
                    WRITER_AUTOCHECKPOINT_PAGES.to_string(),
                ),
        )
        .await?;
        {
            let mut turn = writer.turn().await?;
            MIGRATOR.run(turn.conn()).await?;
            turn.finish();
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(
                opts.create_if_missing(false)
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            )
            .await?;
        let store = Store {
            pool,
            writer,
            path: Arc::new(cfg.path.clone()),
        };
        for m in store.finish_mailbox_merges().await? {
            tracing::warn!(
                kept = %m.kept,
                merged = %m.merged,
                merged_state = %m.merged_state,
                "one mailbox had several subscribers (addresses differing only in case); \
                 folded into the one with the oldest confirmed consent"
            );
        }
        let linked = store.link_suppressions().await?;
        if linked > 0 {
            tracing::info!(linked, "suppressions linked to their subscribers");
        }
        Ok(store)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A write transaction on the write connection, opened with `BEGIN
    /// IMMEDIATE` once this process's earlier writes are done.
    pub async fn begin_write(&self) -> Result<WriteTx> {
        Ok(WriteTx::begin(self.writer.turn().await?).await?)
    }

    /// Runs one write statement, in its own (autocommit) transaction, in
    /// this process's write turn: one round trip instead of three for
    /// BEGIN, the statement and COMMIT.
    pub(crate) async fn write_one<'q>(
        &self,
        q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<sqlx::sqlite::SqliteQueryResult> {
        let mut turn = self.writer.turn().await?;
        let result = q.execute(turn.conn()).await;
        // SQLite rolled back whatever a failed statement began; any other
        // failure (the connection's thread gone) replaces the connection.
        if matches!(result, Ok(_) | Err(sqlx::Error::Database(_))) {
            turn.finish();
        }
        Ok(result?)
    }

    /// Runs `q`, several statements wrapped in `BEGIN IMMEDIATE; …;
    /// COMMIT`, in this process's write turn: one transaction in one round
    /// trip to the database thread instead of one per statement, for the
    /// hot write paths. If any statement fails, the transaction is rolled
    /// back before the error is returned (a failed statement leaves it
    /// open on the connection). A caller dropped mid-script (a cancelled
    /// future) leaves the turn unfinished: the next turn starts on a new
    /// connection, and closing this one rolls back what it had open.
    pub(crate) async fn write_script<'q>(
        &self,
        q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<()> {
        let mut turn = self.writer.turn().await?;
        let result = q.execute(turn.conn()).await;
        match &result {
            Ok(_) => turn.finish(),
            Err(_) => match sqlx::query("ROLLBACK").execute(turn.conn()).await {
                Ok(_) => turn.finish(),
                // Nothing was open (`BEGIN` itself failed), or the
                // connection is broken: either way a new one is safest.
                Err(r) => tracing::debug!(error = %r, "rollback after a failed write script"),
            },
        }
        result?;
        Ok(())
    }

    /// `SELECT 1`: for health checks.
    pub async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .is_ok()
    }

    /// An online, consistent copy via `VACUUM INTO`. Refuses to
    /// overwrite an existing file.
    pub async fn backup_to(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(StoreError::Conflict(format!(
                "{} already exists; choose a new file name",
                dest.display()
            )));
        }
        ensure_parent(dest)?;
        let dest_str = dest
            .to_str()
            .ok_or_else(|| StoreError::Conflict("backup path must be valid UTF-8".into()))?;
        // A read connection: the copy is one read transaction, and writes
        // go on meanwhile.
        sqlx::query("VACUUM INTO ?")
            .bind(dest_str)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `PRAGMA integrity_check` of the database at `path` (e.g. a backup).
    pub async fn integrity_check(path: &Path) -> Result<String> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        let r: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        Ok(r)
    }

    /// Moves the WAL back into the main file; run after large batches.
    pub async fn checkpoint(&self) -> Result<()> {
        self.write_one(sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)"))
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// A value from the key/value `settings` table.
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.write_one(
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES (?, ?) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value),
        )
        .await?;
        Ok(())
    }
}

/// Timestamps are stored as RFC 3339 UTC text with millisecond precision
/// and a `Z` suffix, so they sort lexicographically in SQL.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp {s:?}: {e}")))
}

/// A JSON array of ids, bound as one parameter and expanded in SQL with
/// `IN (SELECT value FROM json_each(?))`: one statement for any number
/// of ids, without building SQL text.
pub(crate) fn json_ids(ids: impl Iterator<Item = i64>) -> String {
    let mut s = String::from("[");
    for (i, id) in ids.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&id.to_string());
    }
    s.push(']');
    s
}

/// `(?, ?), (?, ?), …`: `rows` groups of `cols` placeholders, for one
/// multi-row statement instead of one statement (and one round trip to
/// the connection's thread) per row. Callers keep `rows × cols` far below
/// SQLite's 32,766 bound parameters.
pub(crate) fn value_rows(rows: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(", "));
    vec![row; rows].join(", ")
}

/// `items` cut into runs of at most `max` whose lengths are powers of two,
/// longest first, for multi-row statements built with [`value_rows`].
///
/// Why: sqlx prepares and caches (per connection, up to 100 statements)
/// every distinct SQL text, and a statement of a few hundred rows holds
/// hundreds of KiB inside SQLite. Cut with `chunks(max)`, a batch of any
/// size makes a statement of its own size: a long digest run, whose
/// batches have every size from 1 to the maximum, filled the write
/// connections' caches with ~100 such statements each, memory that grew
/// with the run. Powers of two give at most log2(max) + 1 shapes per call
/// site, prepared once and reused, at the cost of a few more statements
/// per batch.
pub(crate) fn shaped_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = rest.len().min(max);
        // The largest power of two not above n.
        let n = 1usize << (usize::BITS - 1 - n.leading_zeros());
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

pub(crate) fn parse_ts_opt(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A fresh database file in its own temporary directory.
    pub async fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreOptions {
            path: dir.path().join("test.sqlite"),
            busy_timeout: Duration::from_secs(10),
            max_connections: 8,
            synchronous: Synchronous::Normal,
        };
        (Store::open(cfg).await.unwrap(), dir)
    }

    /// An active subscriber, daily at 08:00 UTC on "retrieval", added by an
    /// operator at `now`.
    pub async fn active_subscriber(
        store: &Store,
        now: DateTime<Utc>,
        email: &str,
    ) -> crate::domain::SubscriberId {
        use crate::domain::{EmailAddress, Preferences, SubscriberState};
        use crate::store::subscribers::{ConsentInput, ConsentMethod};
        let prefs = Preferences {
            topics: vec!["retrieval".into()],
            ..Preferences::new(
                5,
                chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                chrono_tz::UTC,
            )
        };
        let consent = ConsentInput {
            method: ConsentMethod::OperatorImport,
            source: "test".into(),
            consent_text_hash: "test".into(),
            ip: None,
        };
        store
            .add_subscriber(
                &EmailAddress::parse(email).unwrap(),
                &prefs,
                SubscriberState::Active,
                &consent,
                &|id, g| format!("hash-{}-{g}", id.0),
                now,
            )
            .await
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::temp_store;
    use super::*;

    #[test]
    fn shaped_chunks_cover_everything_in_order_with_few_distinct_lengths() {
        let items: Vec<u32> = (0..1000).collect();
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..=1000 {
            let chunks: Vec<&[u32]> = shaped_chunks(&items[..n], 500).collect();
            let joined: Vec<u32> = chunks.concat();
            assert_eq!(joined, items[..n], "n={n}");
            for c in &chunks {
                assert!(c.len().is_power_of_two() && c.len() <= 500, "n={n}");
                shapes.insert(c.len());
            }
        }
        // Every batch size from 0 to 1,000 used nine statement shapes
        // (1, 2, 4, …, 256), not 500.
        assert_eq!(shapes.len(), 9);
    }

    #[tokio::test]
    async fn every_connection_has_the_required_pragmas() {
        async fn pragma<T>(conn: &mut sqlx::SqliteConnection, name: &str) -> T
        where
            T: Send + Unpin + for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
        {
            sqlx::query_scalar(&format!("PRAGMA {name}"))
                .fetch_one(conn)
                .await
                .unwrap()
        }
        async fn common(conn: &mut sqlx::SqliteConnection) -> (String, i64, i64, i64) {
            (
                pragma(conn, "journal_mode").await,
                pragma(conn, "synchronous").await,
                pragma(conn, "foreign_keys").await,
                pragma(conn, "busy_timeout").await,
            )
        }
        let expected = ("wal".to_string(), 1, 1, 10_000);
        let (store, _dir) = temp_store().await;
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(store.pool().acquire().await.unwrap());
        }
        for c in conns.iter_mut() {
            assert_eq!(pragma::<i64>(c, "cache_size").await, -READER_CACHE_KIB);
            assert_eq!(common(c).await, expected);
        }
        // The write connection too, with its larger cache and WAL.
        let mut w = store.writer.turn().await.unwrap();
        assert_eq!(
            (
                pragma::<i64>(w.conn(), "cache_size").await,
                pragma::<i64>(w.conn(), "wal_autocheckpoint").await
            ),
            (-WRITER_CACHE_KIB, WRITER_AUTOCHECKPOINT_PAGES as i64)
        );
        assert_eq!(common(w.conn()).await, expected);
    }

    #[tokio::test]
    async fn concurrent_read_modify_write_transactions_never_fail() {
        let (store, _dir) = temp_store().await;
        store.set_setting("counter", "0").await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let mut tx = store.begin_write().await.unwrap();
                    let v: String =
                        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'counter'")
                            .fetch_one(&mut *tx)
                            .await
                            .unwrap();
                    let n: i64 = v.parse().unwrap();
                    sqlx::query("UPDATE settings SET value = ? WHERE key = 'counter'")
                        .bind((n + 1).to_string())
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            store.setting("counter").await.unwrap().as_deref(),
            Some("1600")
        );
    }

    #[tokio::test]
    async fn a_second_instance_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.sqlite");
        let first = InstanceLock::acquire(&db).unwrap();
        let err = InstanceLock::acquire(&db).unwrap_err();
        assert!(
            err.to_string().contains("another paperboy process"),
            "{err}"
        );
        drop(first);
        InstanceLock::acquire(&db).unwrap();
    }

    #[tokio::test]
    async fn a_write_script_cut_short_leaves_no_transaction_open() {
        let (store, _dir) = temp_store().await;
        // Slow enough to be cancelled while the database thread runs it.
        let slow = sqlx::query(
            "BEGIN IMMEDIATE; CREATE TABLE cut (x); \
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000000) \
             INSERT INTO cut SELECT i FROM c; COMMIT;",
        );
        let cut = tokio::time::timeout(
            std::time::Duration::from_millis(30),
            store.write_script(slow),
        )
        .await;
        assert!(cut.is_err(), "the script was cut short");
        // Later writes neither fail inside a leftover transaction nor wait
        // for one forever, and the cut script left nothing behind.
        for i in 0..4 {
            store.set_setting(&format!("k{i}"), "v").await.unwrap();
        }
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'cut'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn backup_produces_an_intact_copy_while_writes_continue() {
        let (store, dir) = temp_store().await;
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    store.set_setting(&format!("k{i}"), "v").await.unwrap();
                }
            })
        };
        let dest = dir.path().join("backup.sqlite");
        store.backup_to(&dest).await.unwrap();
        writer.await.unwrap();
        assert_eq!(Store::integrity_check(&dest).await.unwrap(), "ok");
        assert!(store.backup_to(&dest).await.is_err(), "must not overwrite");
    }
}
