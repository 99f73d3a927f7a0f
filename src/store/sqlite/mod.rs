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
mod inserts;
mod keys;
mod outbox;
mod task_write;
mod tasks;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
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
    cache: Arc<super::task_cache::TaskCache>,
    /// New tasks without an idempotency key, committed in groups.
    inserts: group_commit::Inserts,
    /// Stops the checkpointer when the store is dropped.
    _checkpoints: tokio_util::sync::DropGuard,
    /// How many times the checkpointer started the WAL over (its test reads it).
    #[cfg_attr(not(test), allow(dead_code))]
    wal_restarts: Arc<AtomicU64>,
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
        let wal_restarts = Arc::new(AtomicU64::new(0));
        tokio::spawn(checkpoints(options.clone(), writes.clone(), wal_restarts.clone(), stop.clone()));
        Ok(SqliteStore {
            pool,
            inserts: group_commit::Inserts::start(writes.clone()),
            writes,
            cache: Default::default(),
            _checkpoints: stop.drop_guard(),
            wal_restarts,
        })
    }

    #[cfg(test)]
    fn wal_restarts(&self) -> u64 {
        self.wal_restarts.load(Ordering::Relaxed)
    }

    /// A write of task `id` begins (see [`task_write`]).
    fn task_write(&self, id: uuid::Uuid) -> task_write::TaskWrite {
        task_write::TaskWrite::new(&self.cache, &self.writes, id)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        use sqlx::Connection;
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok() && self.writes.lock().await.ping().await.is_ok()
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
async fn checkpoints(
    options: SqliteConnectOptions,
    writes: Arc<writer::Writer>,
    restarts: Arc<AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut copier: Option<sqlx::SqliteConnection> = None;
    let mut patience_ms = CHECKPOINT_PATIENCE_MS;
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
        patience_ms = match restart(&writes, patience_ms).await {
            Ok(true) => {
                restarts.fetch_add(1, Ordering::Relaxed);
                CHECKPOINT_PATIENCE_MS
            }
            // Each miss lets the WAL grow by another round's writes: wait longer next time.
            Ok(false) => (patience_ms * 2).min(CHECKPOINT_PATIENCE_MAX_MS),
            Err(e) => {
                tracing::debug!(error = %e, "WAL checkpoint failed; the next one retries");
                patience_ms
            }
        };
    }
}

/// How long a checkpoint waits for readers of older snapshots, holding the writer; after
/// a round whose readers outlasted it, twice as long, up to the most.
const CHECKPOINT_PATIENCE_MS: u32 = 5;
const CHECKPOINT_PATIENCE_MAX_MS: u32 = 20;

/// A RESTART checkpoint on the writer connection, waiting for readers at most
/// `patience_ms` (a shorter busy timeout for this statement only); true when the WAL
/// starts over. Readers that started after the copy read the database file, so only the
/// few mid-query at that moment are waited for; when they outlast the patience, the copy
/// made so far stands and the next round tries again.
async fn restart(writes: &writer::Writer, patience_ms: u32) -> Result<bool, sqlx::Error> {
    let mut writer = writes.lock().await;
    sqlx::query(&format!("PRAGMA busy_timeout = {patience_ms}")).execute(&mut *writer).await?;
    // (busy, WAL frames, frames copied): busy is 1 when readers outlasted the patience.
    let checkpointed: Result<Vec<(i64, i64, i64)>, _> = sqlx::query_as("PRAGMA wal_checkpoint(RESTART)").fetch_all(&mut *writer).await;
    // Restored before the connection serves another write, whatever the checkpoint did.
    sqlx::query(&format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis())).execute(&mut *writer).await?;
    Ok(checkpointed?.first().is_some_and(|(busy, _, _)| *busy == 0))
}

/// The one row a query read with `fetch_all` must return (see the module comment).
pub(crate) fn one<T>(rows: Vec<T>) -> StoreResult<T> {
    rows.into_iter().next().ok_or_else(|| db("the query returned no row"))
}

pub(crate) fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::store::TaskStore;
    use crate::tasks::model::NewTask;

    /// A transaction is never left open on the one writer by a caller that went away: it
    /// runs to its end, and the writes after it commit.
    #[tokio::test]
    async fn a_delete_whose_caller_stopped_waiting_still_ends_and_later_writes_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let doomed = NewTask::sample();
        store.insert_task(&doomed, u64::MAX).await.unwrap();
        // Polled once, then dropped at its first await, as by a client that hung up. (Before
        // transactions ran to their end, that left BEGIN IMMEDIATE open on the writer.)
        tokio::select! {
            biased;
            _ = store.delete_task(doomed.id, "deleted", 5) => panic!("a write cannot end without waiting"),
            () = std::future::ready(()) => {}
        }
        let later = NewTask::sample();
        store.insert_task(&later, u64::MAX).await.unwrap();
        for _ in 0..500 {
            let reopened = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
            let (doomed, later) = (reopened.task(doomed.id).await.unwrap(), reopened.task(later.id).await.unwrap());
            if doomed.is_some_and(|t| t.deleted) && later.is_some() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        panic!("the abandoned delete or the create after it never committed");
    }

    /// The checkpointer starts the WAL over round after round while creates commit one by
    /// one and reads never pause: without it the WAL holds every page every commit wrote.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_while_writes_and_reads_keep_coming() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        // Three restarts take three rounds (750 ms); the deadline allows for a loaded machine.
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, done) = (store.clone(), done.clone());
                tokio::spawn(async move {
                    while !done.load(Ordering::Relaxed) {
                        store.queue_depth().await.unwrap();
                    }
                })
            })
            .collect();
        let mut commits = 0u64;
        while store.wal_restarts() < 3 && Instant::now() < deadline {
            // One at a time: each create is a commit of its own.
            store.insert_task(&NewTask::sample(), u64::MAX).await.unwrap();
            commits += 1;
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
        let restarts = store.wal_restarts();
        assert!(restarts >= 3, "the WAL started over {restarts} times in 20 s of {commits} commits");
        let wal = std::fs::metadata(dir.path().join("t.db-wal")).unwrap().len();
        assert!(wal <= 32 * 1024 * 1024, "the WAL file is cut back to journal_size_limit: {wal} bytes");
    }
}
