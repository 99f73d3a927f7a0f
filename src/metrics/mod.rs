//! Prometheus metrics (`GET /metrics`, text exposition format).
//!
//! Two kinds live here. *Events* (requests, created and finished tasks, queue waits,
//! dispatch latency, upstream errors, webhook deliveries) are counted where they happen
//! and only ever grow. *Levels* (tasks by state, queue depth, per-account in-flight and
//! health) are read from the store at scrape time, so they are true across restarts and
//! across replicas sharing one database; [`Metrics::render`] takes them as a [`Levels`].

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::accounts::AccountHealth;
use crate::tasks::model::{State, Tier};

/// Latency buckets for HTTP requests, in seconds: 1 ms to 30 s.
const REQUEST_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Queue wait buckets, in seconds: 10 ms to an hour.
const WAIT_BUCKETS: [f64; 14] = [0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0];
/// Dispatch latency buckets, in seconds: 1 ms to 10 s.
const DISPATCH_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    /// The matched route pattern (`/luma/generations/{id}`), never the raw path, so the
    /// label set stays bounded; unmatched paths count as `unmatched`.
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierOnly {
    pub tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierState {
    pub tier: &'static str,
    pub state: &'static str,
}

/// How an upstream call went wrong, as the worker classified it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// 429 from the upstream: the account cools down.
    RateLimited,
    /// Credentials refused: the account is disabled.
    AccountAuth,
    /// The upstream refused the task for good (moderation, invalid input).
    Rejected,
    /// Worth retrying (5xx, timeouts).
    Transient,
    /// The upstream accepted the task and later reported it failed.
    Failed,
    /// No progress within the progress timeout.
    Timeout,
}

impl UpstreamErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::RateLimited => "rate_limited",
            UpstreamErrorKind::AccountAuth => "account_auth",
            UpstreamErrorKind::Rejected => "rejected",
            UpstreamErrorKind::Transient => "transient",
            UpstreamErrorKind::Failed => "failed",
            UpstreamErrorKind::Timeout => "timeout",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub account: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountHealthLabels {
    pub account: String,
    pub health: &'static str,
}

/// Outcome of one webhook delivery attempt (the outbox of issue 6 reports here).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Failed, will be retried.
    Retrying,
    /// Failed for the last time.
    GaveUp,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retrying => "retrying",
            DeliveryOutcome::GaveUp => "gave_up",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub outcome: &'static str,
}

/// The levels read from the store at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Levels {
    /// Tasks per (tier, state), all time.
    pub tasks: Vec<(Tier, State, u64)>,
    /// Queued tasks per tier.
    pub queue_depth: Vec<(Tier, u64)>,
    /// Per account: id, slots, tasks holding a slot, health.
    pub accounts: Vec<(String, u32, u32, AccountHealth)>,
}

/// Every metric lumagate exports. One per process, owned by the engine.
pub struct Metrics {
    registry: Registry,
    /// Level gauges are rebuilt on every scrape; the lock keeps two scrapes from interleaving.
    scrape: Mutex<()>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabels, Histogram>,
    pub tasks_created: Family<TierOnly, Counter>,
    /// Polls answered from memory by the fast path (the rest of the polls read the store).
    pub polls_from_memory: Counter,
    pub tasks_finished: Family<TierState, Counter>,
    pub queue_wait: Family<TierOnly, Histogram>,
    pub dispatch_latency: Histogram,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub webhook_deliveries: Family<DeliveryLabels, Counter>,
    tasks: Family<TierState, Gauge>,
    queue_depth: Family<TierOnly, Gauge>,
    account_slots: Family<AccountLabel, Gauge>,
    account_in_flight: Family<AccountLabel, Gauge>,
    account_health: Family<AccountHealthLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lumagate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by method, route and status", requests.clone());
        let request_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS.into_iter()));
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by method and route",
            Unit::Seconds,
            request_duration.clone(),
        );
        let polls_from_memory = Counter::default();
        registry.register(
            "polls_from_memory",
            "Polls of a task answered from memory, without reading the store",
            polls_from_memory.clone(),
        );
        let tasks_created = Family::<TierOnly, Counter>::default();
        registry.register("tasks_created", "Tasks accepted, by tier", tasks_created.clone());
        let tasks_finished = Family::<TierState, Counter>::default();
        registry.register(
            "tasks_finished",
            "Tasks that reached a terminal state in this process, by tier and state",
            tasks_finished.clone(),
        );
        let queue_wait = Family::<TierOnly, Histogram>::new_with_constructor(|| Histogram::new(WAIT_BUCKETS.into_iter()));
        registry.register_with_unit(
            "queue_wait",
            "Time from acceptance to dispatch onto an account, by tier",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let dispatch_latency = Histogram::new(DISPATCH_BUCKETS.into_iter());
        registry.register_with_unit(
            "dispatch_latency",
            "Time from a slot and a waiting task both existing to the task's claim (slot free -> dispatch)",
            Unit::Seconds,
            dispatch_latency.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register("upstream_errors", "Upstream errors, by account and kind", upstream_errors.clone());
        let webhook_deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register("webhook_deliveries", "Webhook delivery attempts, by outcome", webhook_deliveries.clone());
        let tasks = Family::<TierState, Gauge>::default();
        registry.register("tasks", "Tasks in the store, by tier and state", tasks.clone());
        let queue_depth = Family::<TierOnly, Gauge>::default();
        registry.register("queue_depth", "Tasks waiting for an account, by tier", queue_depth.clone());
        let account_slots = Family::<AccountLabel, Gauge>::default();
        registry.register("account_slots", "Concurrency of each upstream account", account_slots.clone());
        let account_in_flight = Family::<AccountLabel, Gauge>::default();
        registry.register("account_in_flight", "Tasks holding a slot of each upstream account", account_in_flight.clone());
        let account_health = Family::<AccountHealthLabels, Gauge>::default();
        registry.register(
            "account_health",
            "1 for the health each upstream account is in (enabled, cooldown, disabled), else 0",
            account_health.clone(),
        );
        Metrics {
            registry,
            scrape: Mutex::new(()),
            requests,
            request_duration,
            tasks_created,
            polls_from_memory,
            tasks_finished,
            queue_wait,
            dispatch_latency,
            upstream_errors,
            webhook_deliveries,
            tasks,
            queue_depth,
            account_slots,
            account_in_flight,
            account_health,
        }
    }

    /// Counts one answered request. `route` is a route pattern (or `unmatched`); any
    /// method outside the standard ones counts as `OTHER`, so labels stay bounded.
    pub fn request(&self, method: &axum::http::Method, route: &str, status: u16, took: Duration) {
        let method = standard_method(method);
        let route = intern_route(route);
        self.request_duration.get_or_create(&RouteLabels { method, route }).observe(took.as_secs_f64());
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    }

    pub fn task_created(&self, tier: Tier) {
        self.tasks_created.get_or_create(&TierOnly { tier: tier.as_str() }).inc();
    }

    pub fn task_finished(&self, tier: Tier, state: State) {
        self.tasks_finished.get_or_create(&TierState { tier: tier.as_str(), state: state.as_str() }).inc();
    }

    pub fn upstream_error(&self, account: &str, kind: UpstreamErrorKind) {
        self.upstream_errors.get_or_create(&UpstreamErrorLabels { account: account.to_string(), kind: kind.as_str() }).inc();
    }

    pub fn webhook_delivery(&self, outcome: DeliveryOutcome) {
        self.webhook_deliveries.get_or_create(&DeliveryLabels { outcome: outcome.as_str() }).inc();
    }

    /// The text exposition of every metric, with the levels as given.
    pub fn render(&self, levels: &Levels) -> String {
        let _one_at_a_time = self.scrape.lock().expect("scrape lock");
        // Rebuilt from scratch so that removed accounts and emptied states disappear.
        self.tasks.clear();
        self.queue_depth.clear();
        self.account_slots.clear();
        self.account_in_flight.clear();
        self.account_health.clear();
        for (tier, state, n) in &levels.tasks {
            self.tasks.get_or_create(&TierState { tier: tier.as_str(), state: state.as_str() }).set(*n as i64);
        }
        for tier in Tier::ALL {
            let n = levels.queue_depth.iter().find(|(t, _)| *t == tier).map_or(0, |(_, n)| *n);
            self.queue_depth.get_or_create(&TierOnly { tier: tier.as_str() }).set(n as i64);
        }
        for (account, slots, in_flight, health) in &levels.accounts {
            let label = AccountLabel { account: account.clone() };
            self.account_slots.get_or_create(&label).set(i64::from(*slots));
            self.account_in_flight.get_or_create(&label).set(i64::from(*in_flight));
            for h in [AccountHealth::Enabled, AccountHealth::Cooldown, AccountHealth::Disabled] {
                let labels = AccountHealthLabels { account: account.clone(), health: h.as_str() };
                self.account_health.get_or_create(&labels).set(i64::from(h == *health));
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The name of a standard method, or `OTHER`.
fn standard_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// A route pattern as a `'static` string, so labels are built without allocating. The
/// patterns are the router's own (a fixed set), so the interned strings stay few.
fn intern_route(route: &str) -> &'static str {
    static ROUTES: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());
    if let Some(known) = ROUTES.read().expect("routes").iter().find(|r| **r == route) {
        return known;
    }
    let mut routes = ROUTES.write().expect("routes");
    if let Some(known) = routes.iter().find(|r| **r == route) {
        return known;
    }
    let interned: &'static str = Box::leak(route.to_string().into_boxed_str());
    routes.push(interned);
    interned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_levels_appear_in_the_exposition() {
        let m = Metrics::new();
        m.request(&axum::http::Method::POST, "/luma/generations", 200, Duration::from_millis(3));
        m.request(&axum::http::Method::POST, "/luma/generations", 200, Duration::from_millis(4));
        m.task_created(Tier::Pro);
        m.upstream_error("acc-a", UpstreamErrorKind::RateLimited);
        let text = m.render(&Levels {
            tasks: vec![(Tier::Relax, State::Completed, 7)],
            queue_depth: vec![(Tier::Relax, 2)],
            accounts: vec![("acc-a".into(), 4, 3, AccountHealth::Cooldown)],
        });
        assert!(text.contains(r#"lumagate_http_requests_total{method="POST",route="/luma/generations",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"lumagate_http_request_duration_seconds_count{method="POST",route="/luma/generations"} 2"#), "{text}");
        assert!(text.contains(r#"lumagate_tasks_created_total{tier="pro"} 1"#), "{text}");
        assert!(text.contains(r#"lumagate_tasks{tier="relax",state="completed"} 7"#), "{text}");
        assert!(text.contains(r#"lumagate_queue_depth{tier="relax"} 2"#), "{text}");
        assert!(text.contains(r#"lumagate_queue_depth{tier="pro"} 0"#), "{text}");
        assert!(text.contains(r#"lumagate_account_in_flight{account="acc-a"} 3"#), "{text}");
        assert!(text.contains(r#"lumagate_account_health{account="acc-a",health="cooldown"} 1"#), "{text}");
        assert!(text.contains(r#"lumagate_account_health{account="acc-a",health="enabled"} 0"#), "{text}");
        assert!(text.contains(r#"lumagate_upstream_errors_total{account="acc-a",kind="rate_limited"} 1"#), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn levels_of_a_removed_account_disappear() {
        let m = Metrics::new();
        m.render(&Levels { accounts: vec![("gone".into(), 1, 0, AccountHealth::Enabled)], ..Levels::default() });
        let text = m.render(&Levels::default());
        assert!(!text.contains("gone"), "{text}");
    }
}
