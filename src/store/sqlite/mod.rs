//! The embedded store: one SQLite file in WAL mode in the data folder.
//!
//! SQLite allows one writer at a time. Every write goes through `writes`, the one writer
//! connection (see [`writer`]). Reads use `pool`; in WAL mode they never block the writer
//! nor wait for it.
//! Single rows are read with `fetch_all`, never `fetch_one`/`fetch_optional`: those drop
//! sqlx's row stream before the statement has run to its end, and an unfinished SQLite
//! statement keeps its read snapshot (sqlx issue #2543), which pinned old WAL frames so
//! that checkpoints could not finish and the WAL grew without bound.
//! Multi-statement write transactions begin with `BEGIN IMMEDIATE`, so a read-then-write
//! transaction cannot fail with SQLITE_BUSY_SNAPSHOT when another process (the CLI)
//! writes in between.

mod accounts;
mod group_commit;
mod keys;
mod outbox;
mod tasks;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub(crate) use super::codec::{join, split};
use super::{StoreError, StoreResult};

pub struct SqliteStore {
    /// Readers.
    pool: SqlitePool,
    /// The one writer connection.
    writes: Arc<writer::Writer>,
    /// Tasks as last read; every task write below invalidates its task after commit.
    cache: super::task_cache::TaskCache,
    /// New tasks without an idempotency key, committed in groups.
    inserts: group_commit::Inserts,
    /// Stops the checkpointer when the store is dropped.
    _checkpoints: tokio_util::sync::DropGuard,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies the embedded migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives process crashes (kill -9); only an OS crash
            // may lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            // After a checkpoint resets the WAL, its file is cut back to this size.
            .pragma("journal_size_limit", (32 * 1024 * 1024).to_string())
            // Commits never checkpoint: `checkpoints` below does it off the write path.
            .pragma("wal_autocheckpoint", "0")
            .foreign_keys(true);
        let writes = Arc::new(writer::Writer::open(&options).await?);
        sqlx::migrate!("migrations/sqlite")
            .run(&mut *writes.lock().await)
            .await
            .map_err(|e| StoreError::Database(format!("migrations failed: {e}")))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A local file does not drop connections; the ping would be one more round trip
            // to the connection's thread before every read.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(checkpoints(options.clone(), writes.clone(), stop.clone()));
        Ok(SqliteStore {
            pool,
            inserts: group_commit::Inserts::start(writes.clone()),
            writes,
            cache: Default::default(),
            _checkpoints: stop.drop_guard(),
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// How long a statement waits for a lock another process holds (the CLI's writes).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the WAL is checkpointed: often enough that each copy is short.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Keeps the WAL short without checkpoints inside commits.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold
/// (every 1,000 pages), copying pages and syncing the file while every other write
/// waits. And it can start the WAL over only at an instant when no reader still uses an
/// older snapshot, which a server that reads all the time never offers: the WAL grew by
/// some 30 KB per create, without bound, and every page lookup walked its index.
///
/// So commits never checkpoint (`wal_autocheckpoint = 0`). Every [`CHECKPOINT_EVERY`], a
/// connection of its own first copies the WAL into the database file with a PASSIVE
/// checkpoint, which blocks no write. Then the writer runs a RESTART checkpoint between
/// two writes (see [`restart`]): it copies only the pages written since the first copy
/// began, and the next write starts the WAL over. Measured under 2,500 creates a second
/// (30,000 WAL pages a second): a RESTART alone once a second held the writer 75–95 ms,
/// and every claim of the dispatcher waited behind it; split in two and four times a
/// second, the writer's share is 1–4 ms. (A PASSIVE checkpoint alone never lets the WAL
/// start over while writes keep coming: creates fell from ~8,000/s to ~2,000/s as it grew.)
async fn checkpoints(options: SqliteConnectOptions, writes: Arc<writer::Writer>, stop: tokio_util::sync::CancellationToken) {
    let mut copier: Option<sqlx::SqliteConnection> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
        }
        if copier.is_none() {
            copier = sqlx::Connection::connect_with(&options).await.ok();
        }
        if let Some(conn) = copier.as_mut() {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_all(&mut *conn).await {
                tracing::debug!(error = %e, "WAL copy failed; the restart below copies all");
                copier = None;
            }
        }
        if let Err(e) = restart(&writes).await {
            tracing::debug!(error = %e, "WAL checkpoint failed; the next one retries");
        }
    }
}

/// Longest a checkpoint waits for readers of older snapshots, holding the writer.
const CHECKPOINT_PATIENCE_MS: u32 = 5;

/// A RESTART checkpoint on the writer connection, waiting for readers at most
/// [`CHECKPOINT_PATIENCE_MS`] (a shorter busy timeout for this statement only). Readers
/// that started after the copy read the database file, so only the few mid-query at that
/// moment are waited for; when they outlast the patience, the copy made so far stands
/// and the next round tries again.
async fn restart(writes: &writer::Writer) -> Result<(), sqlx::Error> {
    let mut writer = writes.lock().await;
    sqlx::query(&format!("PRAGMA busy_timeout = {CHECKPOINT_PATIENCE_MS}")).execute(&mut *writer).await?;
    let checkpointed = sqlx::query("PRAGMA wal_checkpoint(RESTART)").fetch_all(&mut *writer).await;
    // Restored before the connection serves another write, whatever the checkpoint did.
    sqlx::query(&format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis())).execute(&mut *writer).await?;
    checkpointed.map(|_| ())
}

/// The one row a query read with `fetch_all` must return (see the module comment).
pub(crate) fn one<T>(rows: Vec<T>) -> StoreResult<T> {
    rows.into_iter().next().ok_or_else(|| db("the query returned no row"))
}

pub(crate) fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}
