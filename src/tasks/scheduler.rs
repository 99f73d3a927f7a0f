//! The dispatcher: hands queued tasks to free account slots, pro first, relax in fair
//! rounds; and the sweeper: resumes tasks whose lease lapsed or that this process held
//! before a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::model::{now_micros, Task, Tier};
use super::estimate::RATE_SAMPLE;
use super::Engine;
use crate::accounts::Account;
use crate::metrics::TierOnly;
use crate::providers::Ask;

/// Queued tasks looked at per dispatch pass (skipping ones whose pinned account is full).
const CANDIDATES_PER_PASS: u64 = 64;
/// Fallback wake-up, in case a notification is missed (another process queued a task).
const TICK: Duration = Duration::from_millis(500);
/// How often leases are swept for tasks to resume.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How often the drain rates behind wait estimates are re-measured.
const MEASURE_EVERY: Duration = Duration::from_millis(500);
/// The same before any rate was first measured: until then estimates rest on the
/// configured run time alone, which knows nothing of the time between tasks (a burst of
/// creates into an idle server was told 40 % too little).
const MEASURE_FIRST_EVERY: Duration = Duration::from_millis(100);

impl Engine {
    pub(crate) async fn run_scheduler(self: Arc<Self>) {
        self.sweep().await;
        let mut last_sweep = tokio::time::Instant::now();
        let mut last_measure = last_sweep;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            if let Err(e) = self.dispatch().await {
                tracing::warn!(error = %e, "dispatch pass failed; retrying");
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                self.sweep().await;
                last_sweep = tokio::time::Instant::now();
            }
            let measure_every = if self.rates.measured() { MEASURE_EVERY } else { MEASURE_FIRST_EVERY };
            if last_measure.elapsed() >= measure_every {
                self.measure_drain_rates().await;
                last_measure = tokio::time::Instant::now();
            }
        }
    }

    /// One dispatch pass: fill every free slot with the best waiting task.
    pub(super) async fn dispatch(self: &Arc<Self>) -> Result<(), crate::store::StoreError> {
        let accounts = self.accounts_for_dispatch().await?;
        let usable = |a: &&Account| a.enabled && self.providers.get(&a.provider).is_some();
        // The slots in use and the candidates are read at once, on two reader connections:
        // one round trip's wait on the path from a freed slot to the next submission, not
        // two. So the candidates are read for the whole pool, not just its free slots.
        let capacity: u32 = accounts.iter().filter(usable).map(|a| a.concurrency).sum();
        if capacity == 0 {
            self.note_relax_full(true);
            return Ok(());
        }
        let wanted = (capacity as u64 * 4).min(CANDIDATES_PER_PASS);
        let (slots, candidates) = tokio::join!(self.store.slots_in_use(), self.store.dispatch_candidates(wanted));
        let ((in_flight, mut pro_running), candidates) = (slots?, candidates?);
        let now = now_micros();
        let mut free: HashMap<&str, u32> = accounts
            .iter()
            .filter(usable)
            .map(|a| (a.id.as_str(), a.concurrency.saturating_sub(*in_flight.get(&a.id).unwrap_or(&0))))
            .collect();
        let mut total_free: u32 = free.values().sum();
        if total_free == 0 {
            self.note_relax_full(true);
            return Ok(());
        }
        for (task, pinned) in candidates {
            if total_free == 0 {
                break;
            }
            // Relax may not take the slots kept for pro; pro tasks already running fill them.
            let kept_for_pro = self.config.pro_reserved_slots.saturating_sub(pro_running);
            if task.tier == Tier::Relax && total_free <= kept_for_pro {
                continue;
            }
            if let Some(pinned) = &pinned {
                if let Some(reason) = pinned_unusable(&accounts, pinned) {
                    if self.store.fail(task.id, None, &reason, now).await? {
                        self.metrics.task_finished(task.tier, super::model::State::Failed);
                    }
                    continue;
                }
            }
            let ask = Ask::of(&task.params, task.parent_id.is_some());
            let upstream_can = |a: &Account| self.providers.get(&a.provider).is_some_and(|p| p.check(&ask).is_ok());
            let Some(account) = choose_account(&accounts, &free, &task, pinned.as_deref(), now, upstream_can) else {
                continue;
            };
            let lease_until = now + self.config.lease_ttl.as_micros() as i64;
            if self.store.claim(task.id, &account, &self.owner, lease_until, self.config.pro_reserved_slots).await? {
                if task.tier == Tier::Pro {
                    pro_running += 1;
                }
                let claimed = now_micros();
                let waited = (claimed - task.created_at).max(0);
                // A task that arrived to a free slot waited for dispatch since it arrived;
                // one that waited for capacity, since the last slot came free.
                let since = task.created_at.max(self.slot_freed_at.load(std::sync::atomic::Ordering::Relaxed));
                self.metrics.queue_wait.get_or_create(&TierOnly { tier: task.tier.as_str() }).observe(waited as f64 / 1e6);
                self.metrics.dispatch_latency.observe((claimed - since).max(0) as f64 / 1e6);
                tracing::info!(task.id = %task.id, account = %account, tier = task.tier.as_str(), "task dispatched");
                *free.get_mut(account.as_str()).expect("chosen from free") -= 1;
                total_free -= 1;
                self.spawn_worker(task.id);
            }
        }
        let kept_for_pro = self.config.pro_reserved_slots.saturating_sub(pro_running);
        self.note_relax_full(total_free <= kept_for_pro);
        Ok(())
    }

    /// Resumes unfinished tasks whose lease lapsed, or that this owner held before a restart.
    pub(super) async fn sweep(self: &Arc<Self>) {
        let now = now_micros();
        let tasks = match self.store.resumable(&self.owner, now).await {
            Ok(tasks) => tasks,
            Err(e) => return tracing::warn!(error = %e, "lease sweep failed"),
        };
        for task in tasks {
            if self.running.lock().expect("running set").contains(&task.id) {
                continue;
            }
            let lease_until = now + self.config.lease_ttl.as_micros() as i64;
            match self.store.take_over(task.id, &self.owner, now, lease_until).await {
                Ok(true) => {
                    tracing::info!(task.id = %task.id, "resuming task");
                    self.spawn_worker(task.id);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(task.id = %task.id, error = %e, "could not take over task"),
            }
        }
    }

    /// Measures how fast the pool and the relax queue drain, for wait estimates.
    async fn measure_drain_rates(&self) {
        let finishes = self.store.recent_finishes(RATE_SAMPLE).await;
        let relax = self.store.recent_dispatches(Tier::Relax, RATE_SAMPLE).await;
        match (finishes, relax) {
            (Ok(finishes), Ok(relax)) => self.rates.update(&finishes, &relax, now_micros()),
            (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "could not measure drain rates"),
        }
    }
}

/// Why a pinned account can never take the task, if it cannot.
fn pinned_unusable(accounts: &[Account], pinned: &str) -> Option<String> {
    match accounts.iter().find(|a| a.id == pinned) {
        None => Some(format!("the upstream account `{pinned}` that made the parent video no longer exists")),
        Some(a) if !a.enabled => Some(format!(
            "the upstream account `{pinned}` that made the parent video is disabled ({})",
            a.disabled_reason.as_deref().unwrap_or("by an operator")
        )),
        Some(_) => None,
    }
}

/// The least busy account (by share of free slots) that may serve the task; ties are
/// broken at random, weighted by the accounts' weights.
fn choose_account(
    accounts: &[Account],
    free: &HashMap<&str, u32>,
    task: &Task,
    pinned: Option<&str>,
    now: i64,
    upstream_can: impl Fn(&Account) -> bool,
) -> Option<String> {
    let fits = |a: &&Account| {
        pinned.is_none_or(|p| p == a.id)
            && a.serves(task.tier, task.params.model, now)
            && upstream_can(a)
            && free.get(a.id.as_str()).is_some_and(|n| *n > 0)
    };
    let share = |a: &Account| free[a.id.as_str()] as f64 / a.concurrency.max(1) as f64;
    let best = accounts.iter().filter(fits).map(share).fold(f64::NAN, f64::max);
    let tied: Vec<&Account> = accounts.iter().filter(fits).filter(|a| share(a) == best).collect();
    let total: u32 = tied.iter().map(|a| a.weight.max(1)).sum();
    if total == 0 {
        return None;
    }
    let mut pick = rand::thread_rng().gen_range(0..total);
    for a in tied {
        let w = a.weight.max(1);
        if pick < w {
            return Some(a.id.clone());
        }
        pick -= w;
    }
    None
}
