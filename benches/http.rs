//! HTTP benchmark of the real binary: poll speed beside a baseline server, durable
//! creates, poll latency as the store grows, and resident memory. Prints one table.
//!
//! `lumagate serve` runs as a child process; the load generator is this process (a
//! hyper client, one keep-alive connection per simulated client). The baseline is this
//! same benchmark binary re-run as a server (`LUMAGATE_BENCH_BASELINE=1`): the same
//! accept loop and hyper stack as lumagate (`lumagate::http::server`), answering the
//! same bytes from memory. Run: `cargo bench --bench http` (BENCH_SECS sets each
//! measurement's length, default 5).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const CONNECTIONS: usize = 64;
const SMALL_STORE: i64 = 1_000;
/// The large store; `BENCH_STORE` shrinks it for a quick trial run.
const LARGE_STORE: i64 = 1_000_000;
const POLLERS: usize = 1_000;
const IMAGE_CREATES: usize = 20;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if let Ok(body_file) = std::env::var("LUMAGATE_BENCH_BASELINE") {
        runtime.block_on(baseline(std::fs::read(body_file).expect("baseline body")));
        return;
    }
    runtime.block_on(bench());
}

/// The baseline: the poll route answering fixed bytes, on lumagate's own accept loop.
async fn baseline(body: Vec<u8>) {
    use axum::http::header;
    use axum::routing::get;
    let body = Bytes::from(body);
    let app = axum::Router::new().route(
        "/luma/generations/{id}",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("{}", listener.local_addr().unwrap().port());
    let limits = lumagate::http::server::ServerLimits { header_timeout: Duration::from_secs(10), max_connections: 4096 };
    lumagate::http::server::serve(listener, app, limits, std::future::pending()).await;
}

struct Server {
    child: Child,
    port: u16,
    key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lumagate(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lumagate"));
    cmd.args(args).arg("--data-dir").arg(dir);
    cmd.env("LUMAGATE_SANDBOX_DELAY_MS", "3600000") // tasks stay queued: nothing renders
        .env("LUMAGATE_RATE_LIMIT_PER_SEC", "0")
        .env("LUMAGATE_RELAX_QUEUE_LIMIT", "100000000")
        .env("LUMAGATE_MAX_CONNECTIONS", "8192")
        .env("LUMAGATE_LOG", "warn");
    cmd
}

async fn start(dir: &Path) -> Server {
    let out = lumagate(dir, &["keys", "create", "--name", "bench", "--tiers", "relax,pro"]).output().expect("keys create");
    let key = String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).last().expect("key").trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = lumagate(dir, &["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let server = Server { child, port, key };
    for _ in 0..200 {
        if get(port, "/readyz", None).await.map(|(s, _)| s) == Some(200) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("lumagate did not become ready");
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(port: u16) -> Option<Sender> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    Some(sender)
}

fn request(method: Method, path: &str, key: Option<&str>, body: Bytes) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path).header("host", "127.0.0.1");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    b.body(Full::new(body)).expect("request")
}

async fn send(sender: &mut Sender, req: Request<Full<Bytes>>) -> Option<(u16, Bytes)> {
    sender.ready().await.ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

async fn get(port: u16, path: &str, key: Option<&str>) -> Option<(u16, Bytes)> {
    let mut s = connect(port).await?;
    send(&mut s, request(Method::GET, path, key, Bytes::new())).await
}

#[derive(Default)]
struct Load {
    ok: usize,
    failed: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Load {
    fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    /// Of sorted latencies (`load` sorts them).
    fn percentile_ms(&self, p: f64) -> f64 {
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }
}

/// `connections` clients, each on its own keep-alive connection, sending `make()`
/// back to back for `length`; 200 counts as done.
async fn load(port: u16, connections: usize, length: Duration, make: Arc<dyn Fn() -> Request<Full<Bytes>> + Send + Sync>) -> Load {
    let started = Instant::now();
    let deadline = started + length;
    let mut clients = Vec::new();
    for _ in 0..connections {
        let make = make.clone();
        clients.push(tokio::spawn(async move {
            let mut load = Load::default();
            let Some(mut sender) = connect(port).await else {
                load.failed += 1;
                return load;
            };
            while Instant::now() < deadline {
                let at = Instant::now();
                match send(&mut sender, make()).await {
                    Some((200, _)) => {
                        load.ok += 1;
                        load.latencies.push(at.elapsed());
                    }
                    Some(_) => load.failed += 1,
                    None => {
                        load.failed += 1;
                        match connect(port).await {
                            Some(s) => sender = s,
                            None => break,
                        }
                    }
                }
            }
            load
        }));
    }
    let mut total = Load::default();
    for c in clients {
        let l = c.await.expect("client");
        total.ok += l.ok;
        total.failed += l.failed;
        total.latencies.extend(l.latencies);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    total
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Fills the store up to `total` tasks with completed tasks of 1,000 other keys, in
/// one SQL statement (setup speed; the API would take hours).
async fn fill_store(db: &Path, total: i64) {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(60))
        .connect()
        .await
        .expect("open the database");
    let (have,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tasks").fetch_one(&mut conn).await.unwrap();
    if have >= total {
        return;
    }
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
         INSERT INTO tasks (id, key_id, tier, state, prompt, params, created_at, finished_at, progress,
                            video_key, thumbnail_key, width, height, duration_secs)
         SELECT printf('%08x-0000-4000-8000-%012x', i, i), 'bulk-' || (i % 1000), 'relax', 'completed',
                'bulk task', (SELECT params FROM tasks LIMIT 1), 1700000000000000 + i, 1700000000000000 + i, 100,
                'videos/bulk.mp4', 'thumbs/bulk.jpg', 1280, 720, 5.0
         FROM n",
    )
    .bind(have + 1)
    .bind(total)
    .execute(&mut *tx)
    .await
    .expect("bulk insert");
    tx.commit().await.unwrap();
}

/// A PNG of noise (it does not compress) of about `bytes`.
fn noise_png(bytes: usize) -> Vec<u8> {
    let side = ((bytes / 3) as f64).sqrt() as u32;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels = image::RgbImage::from_fn(side, side, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    pixels.write_to(&mut out, image::ImageFormat::Png).expect("png");
    out.into_inner()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = mib(status_kb_file("/proc/meminfo", "MemTotal:")) / 1024.0;
    format!("{cores} cores, {cpu}, {mem:.0} GiB")
}

fn status_kb_file(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn bench() {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let length = Duration::from_secs(secs);
    let large_store: i64 = std::env::var("BENCH_STORE").ok().and_then(|s| s.parse().ok()).unwrap_or(LARGE_STORE);
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path()).await;
    let pid = server.child.id();
    let port = server.port;
    let key: Arc<str> = server.key.clone().into();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kb = status_kb(pid, "VmRSS:");

    // The polled task, and a store of 1,000 tasks.
    let mut s = connect(port).await.expect("connect");
    let created = send(&mut s, request(Method::POST, "/luma/generations", Some(&key), Bytes::from_static(br#"{"user_prompt":"a benchmark"}"#)))
        .await
        .expect("create");
    assert_eq!(created.0, 200, "create failed: {:?}", created.1);
    let id = serde_json::from_slice::<serde_json::Value>(&created.1).unwrap()["id"].as_str().unwrap().to_string();
    let db = dir.path().join("lumagate.db");
    fill_store(&db, SMALL_STORE).await;
    let poll_path: Arc<str> = format!("/luma/generations/{id}").into();
    let poll = {
        let (key, path) = (key.clone(), poll_path.clone());
        Arc::new(move || request(Method::GET, &path, Some(&key), Bytes::new())) as Arc<dyn Fn() -> _ + Send + Sync>
    };
    // Warm up, then measure.
    load(port, CONNECTIONS, Duration::from_secs(1), poll.clone()).await;
    let poll_small = load(port, CONNECTIONS, length, poll.clone()).await;

    // The baseline, answering the same bytes.
    let body = get(port, &poll_path, Some(&key)).await.expect("poll").1;
    let body_file = dir.path().join("baseline.json");
    std::fs::write(&body_file, &body).unwrap();
    let mut base_child = Command::new(std::env::current_exe().unwrap())
        .env("LUMAGATE_BENCH_BASELINE", &body_file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("baseline");
    let base_port: u16 = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(base_child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        line.trim().parse().expect("baseline port")
    };
    load(base_port, CONNECTIONS, Duration::from_secs(1), poll.clone()).await;
    let poll_base = load(base_port, CONNECTIONS, length, poll.clone()).await;
    let _ = base_child.kill();
    let _ = base_child.wait();

    // Durable creates (each answered only after its row is committed).
    let create = {
        let key = key.clone();
        Arc::new(move || request(Method::POST, "/luma/generations", Some(&key), Bytes::from_static(br#"{"user_prompt":"a benchmark"}"#)))
            as Arc<dyn Fn() -> _ + Send + Sync>
    };
    let creates = load(port, CONNECTIONS, length, create).await;

    // A million tasks stored.
    let fill_started = Instant::now();
    fill_store(&db, large_store).await;
    let fill_secs = fill_started.elapsed().as_secs_f64();
    load(port, CONNECTIONS, Duration::from_secs(1), poll.clone()).await;
    let poll_large = load(port, CONNECTIONS, length, poll.clone()).await;

    // 1,000 concurrent pollers.
    let pollers = load(port, POLLERS, length, poll.clone()).await;
    let pollers_peak_kb = status_kb(pid, "VmHWM:");

    // 20 concurrent creates with a 10 MB (base64) image each.
    let image = noise_png(7_500_000);
    let body = Bytes::from(serde_json::to_vec(&serde_json::json!({"user_prompt": "an image", "image_url": lumagate_base64(&image)})).unwrap());
    let body_mb = body.len() as f64 / 1e6;
    let images = {
        let (key, body) = (key.clone(), body.clone());
        Arc::new(move || request(Method::POST, "/luma/generations", Some(&key), body.clone())) as Arc<dyn Fn() -> _ + Send + Sync>
    };
    let image_creates = load(port, IMAGE_CREATES, length, images).await;
    let images_peak_kb = status_kb(pid, "VmHWM:");
    drop(server);

    let ratio = poll_small.per_sec() / poll_base.per_sec();
    let growth = poll_large.percentile_ms(0.99) / poll_small.percentile_ms(0.99);
    println!("lumagate HTTP benchmark — {} — {}", time_now(), machine());
    println!("each measurement {secs} s; load generator and server share the machine\n");
    println!("| measurement | result | p50 ms | p99 ms | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| poll `GET /luma/generations/{{id}}`, {CONNECTIONS} connections, {SMALL_STORE} tasks stored | {:.0} req/s | {:.2} | {:.2} | |",
        poll_small.per_sec(),
        poll_small.percentile_ms(0.5),
        poll_small.percentile_ms(0.99)
    );
    println!(
        "| baseline: same bytes from memory, same HTTP stack | {:.0} req/s | {:.2} | {:.2} | |",
        poll_base.per_sec(),
        poll_base.percentile_ms(0.5),
        poll_base.percentile_ms(0.99)
    );
    println!("| poll / baseline throughput | {ratio:.2} | | | ≥ 0.8 — {} |", verdict(ratio >= 0.8));
    println!(
        "| durable creates, no images, SQLite, {CONNECTIONS} connections | {:.0} /s | {:.2} | {:.2} | ≥ 3000/s — {} |",
        creates.per_sec(),
        creates.percentile_ms(0.5),
        creates.percentile_ms(0.99),
        verdict(creates.per_sec() >= 3000.0)
    );
    println!(
        "| poll with {large_store} tasks stored (filled in {fill_secs:.1} s) | {:.0} req/s | {:.2} | {:.2} | |",
        poll_large.per_sec(),
        poll_large.percentile_ms(0.5),
        poll_large.percentile_ms(0.99)
    );
    println!("| poll p99, {large_store} / {SMALL_STORE} stored | {growth:.2} | | | ≤ 1.5 — {} |", verdict(growth <= 1.5));
    println!("| resident memory, idle | {:.1} MiB | | | < 40 MiB — {} |", mib(idle_kb), verdict(mib(idle_kb) < 40.0));
    println!(
        "| peak memory, {POLLERS} concurrent pollers ({:.0} req/s, {} failed) | {:.1} MiB | {:.2} | {:.2} | < 400 MiB — {} |",
        pollers.per_sec(),
        pollers.failed,
        mib(pollers_peak_kb),
        pollers.percentile_ms(0.5),
        pollers.percentile_ms(0.99),
        verdict(mib(pollers_peak_kb) < 400.0)
    );
    println!(
        "| peak memory, {IMAGE_CREATES} concurrent creates with a {body_mb:.1} MB body each ({} done, {} failed) | {:.1} MiB | {:.0} | {:.0} | < 400 MiB — {} |",
        image_creates.ok,
        image_creates.failed,
        mib(images_peak_kb),
        image_creates.percentile_ms(0.5),
        image_creates.percentile_ms(0.99),
        verdict(mib(images_peak_kb) < 400.0)
    );
    let failures = poll_small.failed + poll_base.failed + creates.failed + poll_large.failed;
    if failures > 0 {
        println!("\n{failures} requests failed in the 64-connection runs");
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

fn lumagate_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
