//! Wait estimates: how long a queued task will wait, from where it stands in the queue
//! and how fast the queue has been moving.
//!
//! Two rates are measured from the store (so they hold across replicas): the interval
//! between recent completions (how often a slot frees) and the interval between recent
//! relax dispatches (how fast the relax queue moves, with pro traffic taking its share
//! of slots already priced in). Pro tasks ahead drain at the first rate, relax tasks
//! ahead at the second. Before anything is measured, the configured run time divided
//! by the slots stands in for both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::QueueStanding;
use crate::tasks::model::Tier;

/// Samples that a rate is measured over.
pub(crate) const RATE_SAMPLE: u64 = 200;
/// Samples older than this say nothing about the current rate.
const RATE_WINDOW_MICROS: i64 = 120_000_000;
/// Fewer samples than this are noise.
const MIN_SAMPLES: usize = 8;

/// The measured drain rates, in microseconds per task; 0 while unmeasured.
#[derive(Default)]
pub(crate) struct DrainRates {
    finish_us: AtomicU64,
    relax_us: AtomicU64,
}

impl DrainRates {
    /// Records new samples (timestamps, newest first); a stale or thin sample keeps the
    /// previous figure, since an idle pool says nothing about how fast it drains.
    pub(crate) fn update(&self, finishes: &[i64], relax_dispatches: &[i64], now: i64) {
        if let Some(us) = interval(finishes, now) {
            self.finish_us.store(us, Ordering::Relaxed);
        }
        if let Some(us) = interval(relax_dispatches, now) {
            self.relax_us.store(us, Ordering::Relaxed);
        }
    }

    /// Whether any rate has been measured yet (relax waits use the completion rate until
    /// the relax queue's own is known).
    pub(crate) fn measured(&self) -> bool {
        self.finish_us.load(Ordering::Relaxed) != 0 || self.relax_us.load(Ordering::Relaxed) != 0
    }

    /// Expected wait of a queued task of `tier` standing at `standing`, on `slots` slots
    /// that each take about `run_time` per task when nothing is measured yet.
    pub(crate) fn wait(&self, standing: QueueStanding, tier: Tier, slots: u64, run_time: Duration) -> Duration {
        let fallback = run_time.as_secs_f64() / slots.max(1) as f64;
        let rate = |a: &AtomicU64| match a.load(Ordering::Relaxed) {
            0 => fallback,
            us => us as f64 / 1e6,
        };
        let per_finish = rate(&self.finish_us);
        let per_relax = match self.relax_us.load(Ordering::Relaxed) {
            0 => per_finish,
            us => us as f64 / 1e6,
        };
        let relax_ahead = standing.ahead.saturating_sub(standing.pro_ahead);
        // Whoever is next waits, on average, half an interval for the next slot.
        let secs = match tier {
            Tier::Pro => (standing.pro_ahead as f64 + 0.5) * per_finish,
            Tier::Relax => standing.pro_ahead as f64 * per_finish + (relax_ahead as f64 + 0.5) * per_relax,
        };
        Duration::from_secs_f64(secs)
    }
}

/// Mean interval between the timestamps (newest first), if they are many and recent enough.
fn interval(times: &[i64], now: i64) -> Option<u64> {
    let (newest, oldest) = (*times.first()?, *times.last()?);
    if times.len() < MIN_SAMPLES || now - newest > RATE_WINDOW_MICROS || newest <= oldest {
        return None;
    }
    Some(((newest - oldest) / (times.len() as i64 - 1)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(step: i64, count: i64, newest: i64) -> Vec<i64> {
        (0..count).map(|i| newest - i * step).collect()
    }

    #[test]
    fn unmeasured_rates_fall_back_to_the_configured_run_time() {
        let rates = DrainRates::default();
        let wait = rates.wait(QueueStanding { ahead: 9, pro_ahead: 0 }, Tier::Relax, 4, Duration::from_secs(8));
        // 8 s per task on 4 slots drains one task every 2 s; 9.5 tasks ahead.
        assert_eq!(wait, Duration::from_secs(19));
    }

    #[test]
    fn relax_waits_use_the_relax_rate_and_pro_ahead_the_completion_rate() {
        let rates = DrainRates::default();
        let now = 1_000_000_000;
        rates.update(&every(100_000, 50, now), &every(400_000, 50, now), now);
        let standing = QueueStanding { ahead: 12, pro_ahead: 2 };
        let relax = rates.wait(standing, Tier::Relax, 8, Duration::from_secs(60));
        // 2 pro × 0.1 s + 10.5 relax × 0.4 s.
        assert!((relax.as_secs_f64() - 4.4).abs() < 1e-9, "{relax:?}");
        let pro = rates.wait(QueueStanding { ahead: 2, pro_ahead: 2 }, Tier::Pro, 8, Duration::from_secs(60));
        assert!((pro.as_secs_f64() - 0.25).abs() < 1e-9, "{pro:?}");
    }

    #[test]
    fn stale_or_thin_samples_keep_the_previous_rate() {
        let rates = DrainRates::default();
        let now = 1_000_000_000;
        rates.update(&every(100_000, 50, now), &[], now);
        // Too few samples, then samples from long ago: neither replaces 0.1 s.
        rates.update(&every(900_000, 3, now), &[], now);
        rates.update(&every(900_000, 50, now - RATE_WINDOW_MICROS - 1), &[], now);
        let wait = rates.wait(QueueStanding { ahead: 1, pro_ahead: 1 }, Tier::Pro, 1, Duration::from_secs(60));
        assert!((wait.as_secs_f64() - 0.15).abs() < 1e-9, "{wait:?}");
    }
}
