//! The engine: validate → persist → enqueue → dispatch → poll → store.
//!
//! [`Engine`] is shared by the HTTP layer (the lifecycle operations in `service`) and
//! the background loops (`scheduler` dispatches queued tasks, `worker` drives one
//! dispatched task to its end). All coordination goes through the store, so a crash
//! at any point leaves a state that the next start resumes from.

mod estimate;
pub mod model;
pub mod request;
mod rehost;
mod scheduler;
mod service;
mod worker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::accounts::{Account, AccountHealth};
use crate::blobs::BlobStore;
use crate::media::intake::{Fetcher, IntakeLimits};
use crate::metrics::{Levels, Metrics};
use crate::providers::Providers;
use crate::store::Store;

pub use rehost::{ResultPolicy, WatermarkPolicy};
pub use service::{EngineError, TaskInfo};

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most relax tasks that may wait at once; beyond it creates answer 429.
    pub relax_queue_limit: u64,
    /// Slots across the pool that relax tasks may not take, kept free for pro.
    pub pro_reserved_slots: u32,
    /// How long a claim holds without renewal.
    pub lease_ttl: Duration,
    /// How often a worker polls its upstream (and renews its lease).
    pub poll_interval: Duration,
    /// A running task fails when its upstream shows no progress for this long.
    pub progress_timeout: Duration,
    /// Retries of a transient upstream error before the task fails.
    pub transient_retries: u32,
    /// Used for estimates before any task has completed.
    pub default_run_time: Duration,
    pub intake: IntakeLimits,
    /// Downloading and processing upstream results.
    pub results: ResultPolicy,
    /// Addresses webhook URLs may reach despite the private-address policy (tests only).
    pub hook_allow_ips: Vec<std::net::IpAddr>,
}

/// How long the dispatcher trusts its copy of the account pool.
const ACCOUNTS_TTL: Duration = Duration::from_secs(1);

/// One account and how it is doing.
#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub account: Account,
    /// Tasks holding one of its slots.
    pub in_flight: u32,
    pub health: AccountHealth,
}

/// The pool and the queue, as operators see them.
#[derive(Debug, Clone)]
pub struct PoolStatus {
    pub accounts: Vec<AccountStatus>,
    /// Queued tasks per tier.
    pub queue_depth: Vec<(model::Tier, u64)>,
}

/// The task engine, shared by the HTTP layer and the background loops.
pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) providers: Providers,
    pub(crate) fetcher: Fetcher,
    /// Downloads upstream results (their hosts are the upstream's, not callers').
    pub(crate) downloads: reqwest::Client,
    pub(crate) config: EngineConfig,
    /// Lease owner name of this process's workers.
    pub(crate) owner: String,
    /// Wakes the dispatcher: a task was queued or a slot freed.
    pub(crate) wake: Notify,
    /// The last dispatch pass left no slot that relax work may take, and none has come
    /// free since: a new relax task need not wake the dispatcher (a pass would find
    /// nothing to do). Pro tasks always wake it.
    relax_full: AtomicBool,
    /// Tasks this process is driving now, so a task never gets two local workers.
    pub(crate) running: Mutex<HashSet<uuid::Uuid>>,
    /// The pool as last read by the dispatcher.
    pub(crate) accounts: RwLock<Vec<Account>>,
    /// When `accounts` was read; None when this process changed an account since.
    accounts_read_at: Mutex<Option<std::time::Instant>>,
    /// How fast the queue has been draining, for wait estimates.
    pub(crate) rates: estimate::DrainRates,
    pub(crate) shutdown: CancellationToken,
    pub(crate) metrics: Metrics,
    /// When a slot last came free (microseconds), so dispatch latency can be measured
    /// from the moment a waiting task and a free slot both existed.
    pub(crate) slot_freed_at: AtomicI64,
    /// Keys that recently authenticated.
    keys: crate::keys::KeyCache,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        providers: Providers,
        config: EngineConfig,
        owner: String,
        allow_fetch_ips: Vec<std::net::IpAddr>,
    ) -> Arc<Self> {
        let fetcher = Fetcher::new(&config.intake, allow_fetch_ips);
        Arc::new(Engine {
            store,
            blobs,
            providers,
            fetcher,
            downloads: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .no_proxy()
                .build()
                .expect("a TLS backend is compiled in"),
            config,
            owner,
            wake: Notify::new(),
            relax_full: AtomicBool::new(false),
            running: Mutex::new(HashSet::new()),
            accounts: RwLock::new(Vec::new()),
            accounts_read_at: Mutex::new(None),
            rates: estimate::DrainRates::default(),
            shutdown: CancellationToken::new(),
            metrics: Metrics::new(),
            slot_freed_at: AtomicI64::new(model::now_micros()),
            keys: crate::keys::KeyCache::default(),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The pool as operators see it: each account with its slots in use and health,
    /// and the queue depth per tier. Read from the store, so it is true for every replica.
    pub async fn pool_status(&self) -> Result<PoolStatus, crate::store::StoreError> {
        let accounts = self.store.accounts().await?;
        let in_flight = self.store.in_flight().await?;
        let (relax, pro) = self.store.queue_depth().await?;
        let now = model::now_micros();
        let accounts = accounts
            .into_iter()
            .map(|a| AccountStatus {
                in_flight: in_flight.get(&a.id).copied().unwrap_or(0),
                health: a.health(now),
                account: a,
            })
            .collect();
        Ok(PoolStatus { accounts, queue_depth: vec![(model::Tier::Relax, relax), (model::Tier::Pro, pro)] })
    }

    /// The levels `/metrics` reports, read at scrape time.
    pub async fn metric_levels(&self) -> Result<Levels, crate::store::StoreError> {
        let pool = self.pool_status().await?;
        Ok(Levels {
            tasks: self.store.task_counts().await?,
            queue_depth: pool.queue_depth,
            accounts: pool
                .accounts
                .into_iter()
                .map(|s| (s.account.id, s.account.concurrency, s.in_flight, s.health))
                .collect(),
        })
    }

    /// The active key with this secret; from memory when it authenticated less than
    /// [`crate::keys::KEY_TTL`] ago.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<crate::keys::ApiKey>, crate::store::StoreError> {
        let digest = crate::keys::secret_digest(secret);
        if let Some(key) = self.keys.get(&digest) {
            return Ok(Some(key));
        }
        let generation = self.keys.generation();
        let key = self.store.active_key_by_hash(&hex::encode(digest)).await?;
        if let Some(key) = &key {
            self.keys.put(digest, key, generation);
        }
        Ok(key)
    }

    /// The key with this secret if it is in memory and fresh; never reads the store.
    pub fn cached_key(&self, secret: &str) -> Option<crate::keys::ApiKey> {
        self.keys.get(&crate::keys::secret_digest(secret))
    }

    /// Revokes a key; this process refuses it from now on. False when no active key has this id.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, crate::store::StoreError> {
        let revoked = self.store.revoke_key(id).await?;
        self.keys.forget(id);
        Ok(revoked)
    }

    /// The lease owner name of this process.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Asks the dispatcher for a pass now (work appeared elsewhere, e.g. another replica).
    pub fn wake(&self) {
        self.capacity_changed();
    }

    /// A slot may have come free (or the pool changed): the next pass looks at everything.
    pub(crate) fn capacity_changed(&self) {
        self.relax_full.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// A task was queued here: wake the dispatcher unless the task is relax and the
    /// last pass found no slot relax may take (a freed slot wakes it anyway).
    pub(crate) fn task_queued(&self, tier: model::Tier) {
        if tier == model::Tier::Pro || !self.relax_full.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// What a dispatch pass found: whether relax work could still take a slot.
    pub(crate) fn note_relax_full(&self, full: bool) {
        self.relax_full.store(full, Ordering::SeqCst);
    }

    /// Resolves when the engine begins shutting down.
    pub async fn stopping(&self) {
        self.shutdown.cancelled().await
    }

    /// Starts the dispatcher and the lease sweeper; resumes unfinished work at once.
    pub async fn start(self: &Arc<Self>) -> Result<(), crate::store::StoreError> {
        self.refresh_accounts().await?;
        let engine = Arc::clone(self);
        tokio::spawn(async move { engine.run_scheduler().await });
        Ok(())
    }

    /// Stops taking work, stops local workers and hands their leases back so that the
    /// next process (or another replica) resumes them without waiting for expiry.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        // Workers watch the token; give them a moment to reach a safe point.
        for _ in 0..50 {
            if self.running.lock().expect("running set").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match self.store.drop_leases(&self.owner).await {
            Ok(n) => tracing::info!(leases = n, "handed back leases"),
            Err(e) => tracing::warn!(error = %e, "could not hand back leases"),
        }
    }

    pub(crate) async fn refresh_accounts(&self) -> Result<Vec<Account>, crate::store::StoreError> {
        let accounts = self.store.accounts().await?;
        *self.accounts.write().expect("accounts lock") = accounts.clone();
        *self.accounts_read_at.lock().expect("accounts clock") = Some(std::time::Instant::now());
        Ok(accounts)
    }

    /// The pool for a dispatch pass: re-read when this process changed an account or the
    /// copy is older than [`ACCOUNTS_TTL`] (an operator's change from another process),
    /// so a pass after a freed slot costs no read of the accounts table.
    pub(crate) async fn accounts_for_dispatch(&self) -> Result<Vec<Account>, crate::store::StoreError> {
        let fresh = self.accounts_read_at.lock().expect("accounts clock").is_some_and(|at| at.elapsed() < ACCOUNTS_TTL);
        if fresh {
            return Ok(self.cached_accounts());
        }
        self.refresh_accounts().await
    }

    /// This process changed an account (cooldown, disabled): the next pass re-reads the pool.
    pub(crate) fn accounts_changed(&self) {
        *self.accounts_read_at.lock().expect("accounts clock") = None;
    }

    pub(crate) fn cached_accounts(&self) -> Vec<Account> {
        self.accounts.read().expect("accounts lock").clone()
    }
}

#[cfg(test)]
mod tests;
