//! Many replicas, one PostgreSQL, one S3-compatible server: three `lumagate serve`
//! processes share 1,000 sandbox tasks under a total concurrency limit; one is killed
//! with SIGKILL mid-run and started again. Every task must complete, none may be sent
//! upstream twice, and no account may ever hold more tasks than its concurrency.
//!
//! Slow (a few minutes on two cores), so it is `#[ignore]`d in plain `cargo test` and
//! run by `scripts/test.sh` (`cargo test --test replicas -- --ignored`).

#[allow(dead_code)]
#[path = "../store_contract/backends.rs"]
mod backends;
#[path = "../support/s3.rs"]
mod s3;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lumagate::blobs::{S3Blobs, S3Location};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;

const BIN: &str = env!("CARGO_BIN_EXE_lumagate");
const TASKS: usize = 1000;
/// Accounts and their concurrency: 8 slots in all.
const ACCOUNTS: [(&str, u32); 3] = [("sbx-a", 2), ("sbx-b", 3), ("sbx-c", 3)];

struct Replica {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    replicas: Vec<Replica>,
    http: reqwest::Client,
}

impl Cluster {
    fn command(&self, args: &[&str], data: &Path) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        for (name, _) in std::env::vars() {
            if name.starts_with("LUMAGATE_") {
                cmd.env_remove(name);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.env("LUMAGATE_DATA_DIR", data);
        cmd
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = self.command(args, &self.dir.path().join("cli")).output().expect("running lumagate");
        assert!(out.status.success(), "lumagate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts replica `i` (again, after a kill) on a fresh port.
    async fn start(&mut self, i: usize) {
        let data = self.dir.path().join(format!("replica-{i}"));
        std::fs::create_dir_all(&data).unwrap();
        let log = data.join("server.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = self
            .command(&["serve", "--log-format", "json", "--listen", &format!("127.0.0.1:{port}")], &data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
            .spawn()
            .expect("spawning lumagate serve");
        let replica = Replica { child: Some(child), port, log };
        if i < self.replicas.len() {
            self.replicas[i] = replica;
        } else {
            self.replicas.push(replica);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self.http.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "replica {i} not ready:\n{}", std::fs::read_to_string(&self.replicas[i].log).unwrap_or_default());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The lease owner a replica announced in its log.
    fn owner(&self, i: usize) -> String {
        let log = std::fs::read_to_string(&self.replicas[i].log).unwrap();
        let line = log.lines().filter(|l| l.contains("lumagate listening")).last().expect("listening line");
        let line: Value = serde_json::from_str(line).expect("a JSON log line");
        // Fields sit at the top level or under `fields`, depending on the log layout.
        let owner = line.get("owner").or_else(|| line["fields"].get("owner"));
        owner.and_then(Value::as_str).unwrap_or_else(|| panic!("owner in {line}")).to_string()
    }

    fn kill(&mut self, i: usize) {
        let mut child = self.replicas[i].child.take().expect("running replica");
        child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix: no shutdown, no lease hand-back
        child.wait().unwrap();
    }
}

#[derive(Default)]
struct Peaks {
    per_account: HashMap<String, i64>,
    total: i64,
    samples: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow; scripts/test.sh runs it"]
async fn three_replicas_share_the_work_survive_a_kill_and_never_overfill_or_repeat() {
    let Some(server) = s3::s3_server() else { return };
    let db = backends::FreshDatabase::create().await;
    let outcome = tokio::spawn(run(db.url.clone(), server.endpoint.clone())).await;
    db.drop_it().await;
    drop(server);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run(database_url: String, s3_endpoint: String) {
    let dir = tempfile::Builder::new().prefix("lumagate-replicas-").tempdir().unwrap();
    let bucket = format!("lg-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let storage = format!("s3://{bucket}?endpoint={s3_endpoint}&region=us-east-1");
    let location = S3Location::parse(&storage).unwrap();
    let creds = rusty_s3::Credentials::new(s3::ACCESS_KEY, s3::SECRET_KEY);
    S3Blobs::new(&location, creds).unwrap().create_bucket().await.unwrap();

    let config = dir.path().join("lumagate.toml");
    let accounts: String = ACCOUNTS
        .iter()
        .map(|(id, c)| format!("[[accounts]]\nid = \"{id}\"\nprovider = \"sandbox\"\nconcurrency = {c}\n"))
        .collect();
    std::fs::write(&config, accounts).unwrap();
    let submissions = dir.path().join("submissions.log");
    let env: Vec<(String, String)> = [
        ("LUMAGATE_CONFIG", config.to_str().unwrap()),
        ("LUMAGATE_DATABASE_URL", &database_url),
        ("LUMAGATE_STORAGE", &storage),
        ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY),
        ("LUMAGATE_SANDBOX_DELAY_MS", "250"),
        ("LUMAGATE_SANDBOX_SHORT_SIDE", "32"),
        ("LUMAGATE_SANDBOX_SUBMISSIONS_LOG", submissions.to_str().unwrap()),
        ("LUMAGATE_LEASE_TTL_SECS", "3"),
        ("LUMAGATE_POLL_INTERVAL_MS", "100"),
        ("LUMAGATE_PRO_RESERVED_SLOTS", "1"),
        ("LUMAGATE_LOG", "info,tower_http=warn,sqlx=warn,lumagate::tasks=warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
    let mut cluster = Cluster { dir, env, replicas: Vec::new(), http };

    assert!(cluster.cli(&["migrate"]).contains("PostgreSQL schema is up to date"));
    let out = cluster.cli(&["keys", "create", "--name", "load", "--tiers", "relax,pro"]);
    let key = out.lines().filter(|l| !l.trim().is_empty()).last().unwrap().trim().to_string();
    for i in 0..3 {
        cluster.start(i).await;
    }

    // Measure the slots in use as the database sees them, as often as it answers.
    let pool = PgPoolOptions::new().max_connections(2).connect(&database_url).await.unwrap();
    let peaks = Arc::new(Mutex::new(Peaks::default()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (pool, peaks, sampling) = (pool.clone(), peaks.clone(), sampling.clone());
        async move {
            while sampling.load(Ordering::Relaxed) {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT account_id, COUNT(*) FROM tasks
                     WHERE state IN ('pending', 'processing') AND account_id IS NOT NULL AND upstream_done_at IS NULL
                     GROUP BY account_id",
                )
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
                {
                    let mut p = peaks.lock().unwrap();
                    p.samples += 1;
                    p.total = p.total.max(rows.iter().map(|(_, n)| n).sum());
                    for (a, n) in rows {
                        let e = p.per_account.entry(a).or_default();
                        *e = (*e).max(n);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    // Submit through all three replicas, one in ten pro.
    let started = Instant::now();
    let mut ids = Vec::with_capacity(TASKS);
    for chunk in 0..TASKS / 50 {
        let creates = (0..50).map(|j| {
            let n = chunk * 50 + j;
            let port = cluster.replicas[n % 3].port;
            let path = if n % 10 == 0 { "/pro/luma/generations" } else { "/luma/generations" };
            let req = cluster.http.post(format!("http://127.0.0.1:{port}{path}")).bearer_auth(&key).json(&json!({"user_prompt": format!("task {n}")}));
            async move {
                let r = req.send().await.expect("create");
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                assert_eq!(status, 200, "create {n}: {body}");
                body["id"].as_str().unwrap().to_string()
            }
        });
        ids.extend(futures_util::future::join_all(creates).await);
    }
    eprintln!("{} tasks created in {:.1}s", ids.len(), started.elapsed().as_secs_f64());

    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    // Mid-run: kill replica 1 while it holds leases, then bring it back.
    let victim = cluster.owner(1);
    let held = Arc::new(AtomicI64::new(0));
    wait_for(Duration::from_secs(300), || {
        let (pool, victim, held) = (pool.clone(), victim.clone(), held.clone());
        async move {
            let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE state = 'completed'").fetch_one(&pool).await.unwrap();
            let mine: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE lease_owner = $1 AND state IN ('pending', 'processing')")
                .bind(&victim)
                .fetch_one(&pool)
                .await
                .unwrap();
            held.store(mine, Ordering::Relaxed);
            (done >= 300 && mine > 0).then_some(())
        }
    })
    .await;
    cluster.kill(1);
    let held = held.load(Ordering::Relaxed);
    eprintln!("killed replica 1 ({victim}) holding {held} leases at {:.1}s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start(1).await;
    assert_ne!(cluster.owner(1), victim, "a restarted replica is a new lease owner");

    wait_for(Duration::from_secs(480), || async {
        let done = count("SELECT COUNT(*) FROM tasks WHERE state IN ('completed', 'failed')").await;
        (done >= TASKS as i64).then_some(())
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();

    // Every task completed.
    let states: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetch_all(&pool).await.unwrap();
    assert_eq!(states, [("completed".to_string(), TASKS as i64)], "every task completes");
    let orphans = count("SELECT COUNT(*) FROM tasks WHERE lease_owner IS NOT NULL").await;
    assert_eq!(orphans, 0);

    // None was sent upstream twice.
    let log = std::fs::read_to_string(cluster.dir.path().join("submissions.log")).unwrap();
    let mut sent: HashMap<&str, u32> = HashMap::new();
    for line in log.lines() {
        *sent.entry(line.split(' ').next().unwrap()).or_default() += 1;
    }
    let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "tasks submitted more than once: {twice:?}");
    assert_eq!(sent.len(), TASKS, "every task was submitted");
    assert!(ids.iter().all(|id| sent.contains_key(id.as_str())));

    // No account ever held more than its concurrency: from the samples, and exactly from
    // each task's claim time and the time its slot was freed (the upstream finished), by a
    // sweep over +1/−1 events.
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT account_id, dispatched_at, COALESCE(upstream_done_at, finished_at) FROM tasks")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut events: HashMap<&str, Vec<(i64, i32)>> = HashMap::new();
    for (account, start, end) in &rows {
        let e = events.entry(account.as_str()).or_default();
        e.push((*start, 1));
        e.push((*end, -1));
    }
    let mut exact: HashMap<String, i32> = HashMap::new();
    for (account, mut e) in events {
        e.sort(); // at equal times a finish (−1) sorts before a claim (+1)
        let (mut now, mut peak) = (0, 0);
        for (_, d) in e {
            now += d;
            peak = peak.max(now);
        }
        exact.insert(account.to_string(), peak);
    }
    let peaks = std::mem::take(&mut *peaks.lock().unwrap());
    eprintln!(
        "all {TASKS} completed in {elapsed:.1}s; peak in flight per account, sampled ({} samples): {:?}, exact: {exact:?}; total sampled peak {}",
        peaks.samples, peaks.per_account, peaks.total
    );
    for (account, limit) in ACCOUNTS {
        assert!(exact[account] <= limit as i32, "{account} held {} tasks at once, limit {limit}", exact[account]);
        assert!(peaks.per_account.get(account).copied().unwrap_or(0) <= limit as i64);
    }
    assert!(peaks.total <= 8, "the pool's 8 slots were exceeded: {}", peaks.total);
    assert!(exact.values().sum::<i32>() >= 6, "the pool was actually used in parallel: {exact:?}");

    // Results live in S3: the presigned video link serves byte ranges.
    let task: Value = cluster
        .http
        .get(format!("http://127.0.0.1:{}/luma/generations/{}", cluster.replicas[2].port, ids[0]))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = task["video"]["url"].as_str().unwrap_or_else(|| panic!("video url in {task}"));
    assert!(url.starts_with(&s3_endpoint), "{url}");
    let part = cluster.http.get(url).header("Range", "bytes=0-7").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(&part.bytes().await.unwrap()[4..8], b"ftyp");
    pool.close().await;
}

async fn wait_for<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let deadline = Instant::now() + limit;
    while check().await.is_none() {
        assert!(Instant::now() < deadline, "timed out after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
