//! Scheduler benchmark: 10,000 tasks from 20 keys through 8 slots on the embedded store,
//! pro tasks mixed in while relax is saturated. Prints one table.
//!
//! The upstream is an in-process stand-in that takes a fixed simulated time and renders
//! nothing, so the figures are the scheduler's own (dispatch, queueing, store), not the
//! renderer's. Run: `cargo bench --bench scheduler` (set BENCH_TASKS to shrink it).
//! `BENCH_STORE=postgres` runs it on a fresh database of the PostgreSQL server at
//! `LUMAGATE_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped afterwards.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lumagate::accounts::Account;
use lumagate::blobs::signing::LinkSigner;
use lumagate::blobs::LocalBlobs;
use lumagate::keys::issue;
use lumagate::media::intake::IntakeLimits;
use lumagate::providers::{Job, ProviderError, Providers, UpstreamStatus, VideoProvider, VideoSource};
use lumagate::store::postgres::{PgStore, PoolLimits};
use lumagate::store::sqlite::SqliteStore;
use lumagate::store::Store;
use sqlx::{Connection, Executor, PgConnection};
use lumagate::tasks::model::{Model, State, Tier};
use lumagate::tasks::request::{parse_generation, RequestKind};
use lumagate::tasks::{Engine, EngineConfig};
use uuid::Uuid;

const KEYS: usize = 20;
const ACCOUNTS: usize = 2;
const SLOTS_PER_ACCOUNT: u32 = 4;
const RUN_TIME: Duration = Duration::from_millis(15);
const PRO_SHARE: usize = 20; // one task in 20 is pro

#[derive(Default)]
struct Clocked {
    submitted: Mutex<HashMap<Uuid, Instant>>,
    /// Per account: when slots freed, not yet taken again (oldest first).
    freed: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Oldest free slot of the account → submission: includes the time a slot stays
    /// idle on purpose because it is kept for pro.
    dispatch_latency: Mutex<Vec<Duration>>,
    /// Relax submissions: the slot freeing that made the dispatch possible (the newest
    /// one not yet used, pool-wide) → submission. The scheduler's reaction time.
    reaction: Mutex<Vec<Duration>>,
    /// The same, with when the submission happened.
    reaction_at: Mutex<Vec<(Instant, Duration)>>,
    freed_pool: Mutex<Vec<Instant>>,
}

#[async_trait]
impl VideoProvider for Clocked {
    async fn submit(&self, account: &Account, job: &Job, _attempt: &str) -> Result<String, ProviderError> {
        let now = Instant::now();
        self.submitted.lock().unwrap().insert(job.task_id, now);
        if let Some(freed) = self.freed.lock().unwrap().get_mut(&account.id).and_then(|q| q.pop_front()) {
            self.dispatch_latency.lock().unwrap().push(now - freed);
        }
        if let Some(freed) = self.freed_pool.lock().unwrap().pop() {
            if job.tier == Tier::Relax {
                self.reaction.lock().unwrap().push(now - freed);
                self.reaction_at.lock().unwrap().push((now, now - freed));
            }
        }
        Ok(job.task_id.to_string())
    }

    async fn poll(&self, account: &Account, job: &Job, _id: &str) -> Result<UpstreamStatus, ProviderError> {
        let started = self.submitted.lock().unwrap()[&job.task_id];
        if started.elapsed() < RUN_TIME {
            return Ok(UpstreamStatus::Running { progress: 50 });
        }
        self.freed.lock().unwrap().entry(account.id.clone()).or_default().push_back(Instant::now());
        self.freed_pool.lock().unwrap().push(Instant::now());
        Ok(UpstreamStatus::Finished(VideoSource::Rendered {
            mp4: Vec::new(),
            thumbnail_jpeg: Vec::new(),
            width: 1280,
            height: 720,
            duration_secs: 5.0,
        }))
    }
}

struct Sample {
    key: usize,
    tier: Tier,
    created: Instant,
    estimate: Option<u64>,
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[((values.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: usize = std::env::var("BENCH_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("BENCH_STORE").is_ok_and(|s| s == "postgres");
    let admin = std::env::var("LUMAGATE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let bench_db = format!("lg_bench_{}", Uuid::new_v4().simple());
    let store: Arc<dyn Store> = if postgres {
        let mut conn = PgConnection::connect(&admin).await.expect("PostgreSQL for BENCH_STORE=postgres");
        conn.execute(format!("CREATE DATABASE {bench_db}").as_str()).await.unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{bench_db}"));
        Arc::new(PgStore::open(url.as_str(), &PoolLimits::default()).await.unwrap())
    } else {
        Arc::new(SqliteStore::open(&dir.path().join("bench.db")).await.unwrap())
    };
    for i in 0..ACCOUNTS {
        store
            .upsert_account(&Account::new(&format!("acct-{i}"), "clocked", SLOTS_PER_ACCOUNT))
            .await
            .unwrap();
    }
    let upstream = Arc::new(Clocked::default());
    let blobs = Arc::new(LocalBlobs::new(dir.path().join("blobs"), LinkSigner::new(b"bench".to_vec())));
    let config = EngineConfig {
        relax_queue_limit: total as u64 * 2,
        pro_reserved_slots: 1,
        lease_ttl: Duration::from_secs(30),
        poll_interval: Duration::from_millis(5),
        progress_timeout: Duration::from_secs(600),
        transient_retries: 3,
        // What an operator configures: the upstream's expected run time.
        default_run_time: RUN_TIME,
        intake: IntakeLimits::default(),
        results: Default::default(),
        hook_allow_ips: Vec::new(),
    };
    let providers = Providers::default().with("clocked", upstream.clone());
    let engine = Engine::new(store.clone(), blobs, providers, config, "bench".into(), vec![]);
    engine.start().await.unwrap();

    let mut keys = Vec::new();
    for k in 0..KEYS {
        let issued = issue(&format!("key-{k}"), Tier::ALL.to_vec(), Model::ALL.to_vec());
        store.insert_key(&issued.key, &issued.hash).await.unwrap();
        keys.push(issued.key);
    }
    let body = parse_generation(br#"{"user_prompt":"bench"}"#, RequestKind::Create).unwrap();

    // Relax arrives in a burst that saturates the pool; pro trickles in while it drains.
    let started = Instant::now();
    let mut samples: HashMap<Uuid, Sample> = HashMap::new();
    let pro_total = total / PRO_SHARE;
    for i in 0..total - pro_total {
        let key = i % KEYS;
        let info = engine.create(&keys[key], Tier::Relax, body.clone()).await.unwrap();
        samples.insert(info.task.id, Sample { key, tier: Tier::Relax, created: Instant::now(), estimate: info.estimate_wait_seconds });
    }
    let relax_created = started.elapsed();
    let expected_drain = RUN_TIME.as_secs_f64() * total as f64 / (ACCOUNTS as f64 * SLOTS_PER_ACCOUNT as f64);
    let gap = Duration::from_secs_f64(expected_drain * 0.6 / pro_total.max(1) as f64);
    for i in 0..pro_total {
        let key = i % KEYS;
        let info = engine.create(&keys[key], Tier::Pro, body.clone()).await.unwrap();
        samples.insert(info.task.id, Sample { key, tier: Tier::Pro, created: Instant::now(), estimate: info.estimate_wait_seconds });
        tokio::time::sleep(gap).await;
    }

    // Wait for everything to end.
    let ids: Vec<Uuid> = samples.keys().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(900);
    for id in &ids {
        loop {
            let info = engine.get(&keys[samples[id].key], *id).await.unwrap();
            if info.task.state.is_terminal() {
                assert_eq!(info.task.state, State::Completed, "task {id} failed: {:?}", info.task.failure_reason);
                break;
            }
            assert!(Instant::now() < deadline, "benchmark did not finish in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let wall = started.elapsed();
    engine.shutdown().await;
    if postgres {
        drop(engine);
        drop(store);
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        conn.execute(format!("DROP DATABASE {bench_db} WITH (FORCE)").as_str()).await.unwrap();
    }

    let submitted = upstream.submitted.lock().unwrap().clone();
    let wait = |s: &Sample, id: &Uuid| submitted[id].duration_since(s.created).as_secs_f64();
    let mut dispatch: Vec<f64> = upstream.dispatch_latency.lock().unwrap().iter().map(|d| d.as_secs_f64() * 1e3).collect();
    // The same latency split by phase: while relax creates still arrive (they share the
    // store's writer with the dispatcher), and after.
    let (mut while_creating, mut after_creating): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for (at, latency) in upstream.reaction_at.lock().unwrap().iter() {
        let ms = latency.as_secs_f64() * 1e3;
        if *at < started + relax_created { while_creating.push(ms) } else { after_creating.push(ms) }
    }
    let mut reaction: Vec<f64> = upstream.reaction.lock().unwrap().iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let mut pro_wait: Vec<f64> = samples.iter().filter(|(_, s)| s.tier == Tier::Pro).map(|(id, s)| wait(s, id) * 1e3).collect();
    let mut per_key = vec![(0.0f64, 0usize); KEYS];
    let mut estimate_error = Vec::new();
    let mut estimate_bias = Vec::new();
    for (id, s) in samples.iter().filter(|(_, s)| s.tier == Tier::Relax) {
        let w = wait(s, id);
        per_key[s.key].0 += w;
        per_key[s.key].1 += 1;
        if let Some(estimate) = s.estimate {
            if w > 1.0 {
                estimate_error.push((estimate as f64 - w).abs() / w * 100.0);
                estimate_bias.push((estimate as f64 - w) / w * 100.0);
            }
        }
    }
    let means: Vec<f64> = per_key.iter().map(|(sum, n)| sum / (*n).max(1) as f64).collect();
    let (min, max) = means.iter().fold((f64::MAX, 0.0f64), |(lo, hi), m| (lo.min(*m), hi.max(*m)));

    println!("scheduler benchmark: {total} tasks ({pro_total} pro), {KEYS} keys, {} slots, {} ms simulated run, {}", ACCOUNTS as u32 * SLOTS_PER_ACCOUNT, RUN_TIME.as_millis(), if postgres { "PostgreSQL" } else { "SQLite" });
    println!("| metric | p50 | p99 / other | target |");
    println!("|---|---|---|---|");
    println!("| dispatch latency, slot free → next relax submit (ms) | {:.2} | {:.2} | p99 < 20 |", percentile(&mut reaction, 0.5), percentile(&mut reaction, 0.99));
    println!(
        "| … while relax creates arrive ({} dispatches) | {:.2} | {:.2} | |",
        while_creating.len(),
        percentile(&mut while_creating, 0.5),
        percentile(&mut while_creating, 0.99)
    );
    println!(
        "| … after the last create ({} dispatches) | {:.2} | {:.2} | |",
        after_creating.len(),
        percentile(&mut after_creating, 0.5),
        percentile(&mut after_creating, 0.99)
    );
    println!("| oldest free slot → next submit, incl. the pro-reserved slot's idle time (ms) | {:.2} | {:.2} | |", percentile(&mut dispatch, 0.5), percentile(&mut dispatch, 0.99));
    println!("| pro wait, create → submit, relax saturated (ms) | {:.2} | {:.2} | p99 < 100 |", percentile(&mut pro_wait, 0.5), percentile(&mut pro_wait, 0.99));
    println!("| relax mean wait per key, min / max (s) | {min:.2} | {max:.2} (spread {:.1} %) | fair |", (max - min) / max.max(1e-9) * 100.0);
    println!("| estimate error, abs(est − actual) / actual, waits > 1 s (%) | {:.1} | p90 {:.1} | p50 < 20 |", percentile(&mut estimate_error.clone(), 0.5), percentile(&mut estimate_error, 0.9));
    println!("| estimate bias, (est − actual) / actual: above 0 promises too long a wait (%) | {:+.1} | p10 {:+.1}, p90 {:+.1} | |", percentile(&mut estimate_bias, 0.5), percentile(&mut estimate_bias, 0.1), percentile(&mut estimate_bias, 0.9));
    println!("| throughput (tasks/s) | {:.0} | relax creates {:.0}/s | |", total as f64 / wall.as_secs_f64(), (total - pro_total) as f64 / relax_created.as_secs_f64());
}
