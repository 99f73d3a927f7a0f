//! The shared store for many replicas: PostgreSQL behind the same traits as SQLite.
//!
//! Replicas coordinate only through this database. Claims lock the task row with
//! `FOR UPDATE SKIP LOCKED` (a replica never waits on a task another one is claiming)
//! and the account row `FOR UPDATE`, then count the account's slots in the same
//! transaction, so concurrency limits hold across replicas. Work that another replica
//! should notice (a task queued, a slot freed) is announced with `NOTIFY`; replicas
//! `LISTEN` and still poll, so a lost notification only delays a dispatch.

mod accounts;
mod keys;
mod outbox;
mod tasks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use super::{StoreError, StoreResult};

/// The channel on which replicas announce dispatchable work.
pub const WORK_CHANNEL: &str = "lumagate_work";

/// Connection pool limits.
#[derive(Debug, Clone)]
pub struct PoolLimits {
    /// Most connections this process opens; replicas × this must stay under the
    /// server's `max_connections`.
    pub max_connections: u32,
    /// How long a query waits for a free connection before it fails (and the request
    /// answers 503 instead of hanging).
    pub acquire_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits { max_connections: 10, acquire_timeout: Duration::from_secs(10) }
    }
}

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects without touching the schema (see [`PgStore::migrate`]).
    pub async fn connect(url: &str, limits: &PoolLimits) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("bad database URL: {e}")))?
            .application_name("lumagate");
        let pool = PgPoolOptions::new()
            .max_connections(limits.max_connections.max(2))
            .min_connections(1)
            .acquire_timeout(limits.acquire_timeout)
            .idle_timeout(Duration::from_secs(300))
            .connect_with(options)
            .await
            .map_err(db)?;
        Ok(PgStore { pool })
    }

    /// Connects and applies the embedded migrations. Safe to run from many replicas at
    /// once: sqlx serialises migrations with an advisory lock.
    pub async fn open(url: &str, limits: &PoolLimits) -> StoreResult<Self> {
        let store = Self::connect(url, limits).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrations failed: {e}")))
    }

    /// A listener subscribed to [`WORK_CHANNEL`]. Its `recv` reconnects by itself.
    pub async fn work_listener(&self) -> StoreResult<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(db)?;
        listener.listen(WORK_CHANNEL).await.map_err(db)?;
        Ok(listener)
    }

    /// Announces dispatchable work to every replica (best effort: they also poll).
    async fn announce_work(&self) {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(WORK_CHANNEL).execute(&self.pool).await {
            tracing::debug!(error = %e, "could not announce work");
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

pub(crate) fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}
