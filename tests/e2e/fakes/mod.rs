//! In-process fakes of Luma's two upstream APIs, following their documented wire formats
//! (`shared/research/luma-official-api.md`, `luma-agents-api.md`): paths, bodies, states,
//! `{"detail": ...}` errors, `Retry-After`, and presigned video links that expire.
//!
//! Each fake is an axum server on 127.0.0.1:0, scriptable per test ([`Script`]): failures to
//! answer submissions or polls with (5xx bursts, 429 with `Retry-After`, 401, malformed
//! JSON, hangs), how long a generation runs, how it ends (a video, or a moderation
//! failure), and how many of the video links it hands out are already expired. It counts
//! submissions, fetches the keyframe links it is given (as Luma does), and serves real MP4s
//! rendered with lumagate's own renderer.

mod wire;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub use wire::Flavor;

/// The key every fake accepts.
pub const API_KEY: &str = "luma-api-test-key";

/// One scripted misbehaviour, used once.
#[derive(Debug, Clone)]
pub enum Failure {
    /// An error status with `{"detail": ...}`, and `Retry-After` seconds if given.
    Status { status: u16, detail: String, retry_after: Option<u32> },
    /// `200` with a body that is not JSON.
    Malformed,
    /// Answers only after this long (longer than lumagate's upstream timeout).
    Hang(Duration),
}

impl Failure {
    pub fn status(status: u16, detail: &str) -> Failure {
        Failure::Status { status, detail: detail.into(), retry_after: None }
    }

    pub fn rate_limited(retry_after: u32) -> Failure {
        Failure::Status { status: 429, detail: "Rate limit exceeded".into(), retry_after: Some(retry_after) }
    }
}

/// How generations end.
#[derive(Debug, Clone)]
pub enum Outcome {
    Video,
    /// `failed` with this `failure_reason` (and, on the Agents API, `failure_code`).
    Fail { reason: String, code: String },
}

/// What the fake does; change it with [`Fake::script`].
#[derive(Debug, Clone)]
pub struct Script {
    pub submit_failures: VecDeque<Failure>,
    pub poll_failures: VecDeque<Failure>,
    /// From creation to `completed`/`failed`; the first fifth is `queued`.
    pub run_time: Duration,
    pub outcome: Outcome,
    /// This many of the first video links handed out answer 403, as an expired S3 link does.
    pub expired_links: usize,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            submit_failures: VecDeque::new(),
            poll_failures: VecDeque::new(),
            run_time: Duration::from_millis(600),
            outcome: Outcome::Video,
            expired_links: 0,
        }
    }
}

/// What a keyframe link gave when the fake fetched it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: String,
    pub status: u16,
    pub content_type: String,
    pub bytes: usize,
}

pub(super) struct Generation {
    id: String,
    created: Instant,
    created_at: String,
    request: Value,
    outcome: Outcome,
    run_time: Duration,
    /// Seconds of footage the result holds.
    seconds: f64,
    frame: (u32, u32),
    /// Rendered once, on first need.
    video: Option<Bytes>,
}

#[derive(Default)]
struct Counters {
    submit_attempts: usize,
    submissions: usize,
    polls: usize,
    links_minted: usize,
    expired_served: usize,
    downloads: usize,
}

struct Inner {
    flavor: Flavor,
    script: Mutex<Script>,
    generations: Mutex<HashMap<String, Generation>>,
    counters: Mutex<Counters>,
    fetched: Mutex<Vec<Fetched>>,
    bodies: Mutex<Vec<Value>>,
    origin: String,
}

/// A running fake upstream; it stops when dropped.
pub struct Fake {
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Fake {
    pub async fn start(flavor: Flavor) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a fake upstream");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let inner = Arc::new(Inner {
            flavor,
            script: Mutex::new(Script::default()),
            generations: Mutex::new(HashMap::new()),
            counters: Mutex::new(Counters::default()),
            fetched: Mutex::new(Vec::new()),
            bodies: Mutex::new(Vec::new()),
            origin: format!("http://{addr}"),
        });
        let prefix = flavor.prefix();
        // Generations have no list on the Agents API; Dream Machine also takes the legacy
        // `POST /generations` besides `POST /generations/video`.
        let api = match flavor {
            Flavor::DreamMachine => Router::new()
                .route("/generations", post(create).get(list))
                .route("/generations/video", post(create)),
            Flavor::Agents => Router::new().route("/generations", post(create)),
        }
        .route("/generations/{id}", get(read));
        let app = Router::new()
            .nest(prefix, api)
            .route("/media/{file}", get(media))
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { inner, server }
    }

    /// The base URL an account's `credentials.base_url` points at.
    pub fn base_url(&self) -> String {
        format!("{}{}", self.inner.origin, self.inner.flavor.prefix())
    }

    /// `--credentials` for `lumagate accounts add`.
    pub fn credentials(&self, key: &str) -> String {
        json!({ "api_key": key, "base_url": self.base_url() }).to_string()
    }

    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.inner.script.lock().unwrap());
    }

    /// Generations created (accepted submissions).
    pub fn submissions(&self) -> usize {
        self.inner.counters.lock().unwrap().submissions
    }

    /// Create requests received, refused ones included.
    pub fn submit_attempts(&self) -> usize {
        self.inner.counters.lock().unwrap().submit_attempts
    }

    pub fn expired_links_served(&self) -> usize {
        self.inner.counters.lock().unwrap().expired_served
    }

    pub fn downloads(&self) -> usize {
        self.inner.counters.lock().unwrap().downloads
    }

    /// The bodies of accepted submissions, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.inner.bodies.lock().unwrap().clone()
    }

    /// Keyframe links the fake fetched, in order.
    pub fn fetched(&self) -> Vec<Fetched> {
        self.inner.fetched.lock().unwrap().clone()
    }
}

fn detail(status: u16, text: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({ "detail": text }))).into_response()
}

/// Plays a scripted failure, if one is due.
async fn misbehave(failure: Option<Failure>) -> Option<Response> {
    match failure? {
        Failure::Status { status, detail: text, retry_after } => {
            let mut r = detail(status, &text);
            if let Some(secs) = retry_after {
                r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            }
            Some(r)
        }
        Failure::Malformed => Some((StatusCode::OK, [("content-type", "application/json")], "{\"id\": \"3f2a\", \"state\": ").into_response()),
        Failure::Hang(d) => {
            tokio::time::sleep(d).await;
            Some(detail(504, "Gateway timeout"))
        }
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {API_KEY}"))
}

async fn create(State(fake): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    fake.counters.lock().unwrap().submit_attempts += 1;
    if !authorized(&headers) {
        return detail(401, "Invalid API key");
    }
    let due = fake.script.lock().unwrap().submit_failures.pop_front();
    if let Some(r) = misbehave(due).await {
        return r;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return detail(400, "Request body is not valid JSON");
    };
    let plan = match fake.flavor.validate(&request) {
        Ok(plan) => plan,
        Err((status, text)) => return detail(status, &text),
    };
    // Luma fetches image keyframes itself; a link it cannot read fails the request.
    for url in &plan.image_urls {
        let fetched = fetch(url).await;
        let ok = fetched.status == 200 && fetched.content_type.starts_with("image/") && fetched.bytes > 0;
        fake.fetched.lock().unwrap().push(fetched);
        if !ok {
            return detail(422, "failed to fetch URL");
        }
    }
    let parent_seconds = plan.parent.as_ref().map(|p| fake.generations.lock().unwrap().get(p).map(|g| g.seconds));
    let seconds = match parent_seconds {
        Some(None) => return detail(400, "Generation not found"),
        // Dream Machine's extension result is the whole continued video; Ray 3's is the new block.
        Some(Some(parent)) if fake.flavor == Flavor::DreamMachine => parent + plan.seconds,
        _ => plan.seconds,
    };
    let script = fake.script.lock().unwrap().clone();
    let id = uuid::Uuid::new_v4().to_string();
    let created_at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let generation = Generation {
        id: id.clone(),
        created: Instant::now(),
        created_at,
        request: request.clone(),
        outcome: script.outcome.clone(),
        run_time: script.run_time,
        seconds,
        frame: plan.frame,
        video: None,
    };
    let answer = fake.flavor.generation(&generation, "queued", None);
    fake.generations.lock().unwrap().insert(id, generation);
    fake.bodies.lock().unwrap().push(request);
    fake.counters.lock().unwrap().submissions += 1;
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn read(State(fake): State<Arc<Inner>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    fake.counters.lock().unwrap().polls += 1;
    if !authorized(&headers) {
        return detail(401, "Invalid API key");
    }
    let due = fake.script.lock().unwrap().poll_failures.pop_front();
    if let Some(r) = misbehave(due).await {
        return r;
    }
    let state = {
        let generations = fake.generations.lock().unwrap();
        let Some(g) = generations.get(&id) else { return detail(404, "Generation not found") };
        let elapsed = g.created.elapsed();
        let state = if elapsed < g.run_time / 5 {
            "queued"
        } else if elapsed < g.run_time {
            fake.flavor.running_state()
        } else {
            match g.outcome {
                Outcome::Video => "completed",
                Outcome::Fail { .. } => "failed",
            }
        };
        state
    };
    let link = if state == "completed" {
        ensure_rendered(&fake, &id).await;
        Some(mint_link(&fake, &id))
    } else {
        None
    };
    let generations = fake.generations.lock().unwrap();
    let g = generations.get(&id).expect("still there");
    (StatusCode::OK, Json(fake.flavor.generation(g, state, link.as_deref()))).into_response()
}

/// Dream Machine's list, newest first.
async fn list(State(fake): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return detail(401, "Invalid API key");
    }
    let generations = fake.generations.lock().unwrap();
    let mut all: Vec<&Generation> = generations.values().collect();
    all.sort_by_key(|g| std::cmp::Reverse(g.created));
    let items: Vec<Value> = all.iter().map(|g| fake.flavor.generation(g, "dreaming", None)).collect();
    let count = items.len();
    Json(json!({ "generations": items, "count": count, "has_more": false, "limit": 100, "offset": 0 })).into_response()
}

/// A presigned-style link, fresh on every read; the first `expired_links` are dead on arrival.
fn mint_link(fake: &Inner, id: &str) -> String {
    let mut counters = fake.counters.lock().unwrap();
    counters.links_minted += 1;
    let expired = counters.links_minted <= fake.script.lock().unwrap().expired_links;
    let expires = if expired { 1 } else { u64::MAX / 2 };
    format!("{}/media/{id}.mp4?X-Amz-Expires={expires}&n={}", fake.origin, counters.links_minted)
}

async fn ensure_rendered(fake: &Arc<Inner>, id: &str) {
    let spec = {
        let generations = fake.generations.lock().unwrap();
        let g = generations.get(id).expect("exists");
        if g.video.is_some() {
            return;
        }
        let prompt = g.request.get("prompt").and_then(Value::as_str).unwrap_or("").to_string();
        lumagate::media::render::RenderSpec {
            width: g.frame.0,
            height: g.frame.1,
            frames: (g.seconds * 24.0).round() as u32,
            prompt,
            ..Default::default()
        }
    };
    let mp4 = tokio::task::spawn_blocking(move || lumagate::media::render::render(&spec).expect("the fake renders").mp4)
        .await
        .expect("render task");
    if let Some(g) = fake.generations.lock().unwrap().get_mut(id) {
        g.video.get_or_insert(Bytes::from(mp4));
    }
}

async fn media(State(fake): State<Arc<Inner>>, Path(file): Path<String>, axum::extract::RawQuery(query): axum::extract::RawQuery) -> Response {
    let id = file.trim_end_matches(".mp4");
    let expired = query.unwrap_or_default().split('&').any(|kv| kv == "X-Amz-Expires=1");
    if expired {
        fake.counters.lock().unwrap().expired_served += 1;
        return (StatusCode::FORBIDDEN, [("content-type", "application/xml")], "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>").into_response();
    }
    let video = fake.generations.lock().unwrap().get(id).and_then(|g| g.video.clone());
    match video {
        Some(bytes) => {
            fake.counters.lock().unwrap().downloads += 1;
            ([("content-type", "video/mp4")], bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such object").into_response(),
    }
}

async fn fetch(url: &str) -> Fetched {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
    match client.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let bytes = r.bytes().await.map(|b| b.len()).unwrap_or(0);
            Fetched { url: url.into(), status, content_type, bytes }
        }
        Err(e) => Fetched { url: url.into(), status: 0, content_type: format!("error: {e}"), bytes: 0 },
    }
}

/// The line of `lumagate accounts list` output for one account.
pub fn account_status(list: &str, id: &str) -> String {
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .map(|l| l.to_string())
        .unwrap_or_else(|| panic!("account {id} is not in:\n{list}"))
}
