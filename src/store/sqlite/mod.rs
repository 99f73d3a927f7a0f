//! The embedded store: one SQLite file in WAL mode in the data folder.
//!
//! SQLite allows one writer at a time. Every write goes through `writes`, a pool of one
//! connection, so writers queue in order on the pool instead of colliding and sleeping
//! in SQLite's busy handler (whose coarse 1–100 ms back-off made dispatch latency spiky).
//! Reads use `pool`; in WAL mode they never block the writer nor wait for it.
//! Multi-statement write transactions begin with `BEGIN IMMEDIATE`, so a read-then-write
//! transaction cannot fail with SQLITE_BUSY_SNAPSHOT when another process (the CLI)
//! writes in between.

mod accounts;
mod keys;
mod outbox;
mod tasks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub(crate) use super::codec::{join, split};
use super::{StoreError, StoreResult};

pub struct SqliteStore {
    /// Readers.
    pool: SqlitePool,
    /// The one writer connection.
    writes: SqlitePool,
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
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            // Waiting for the writer is queueing, not a fault: allow for long bursts.
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writes)
            .await
            .map_err(|e| StoreError::Database(format!("migrations failed: {e}")))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(db)?;
        Ok(SqliteStore { pool, writes })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

pub(crate) fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}
