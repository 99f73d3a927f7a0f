//! The HTTP layer: routing, extractors, wire types and errors. It knows axum and JSON,
//! and nothing of SQL or upstream formats.

mod admin;
pub mod body_budget;
mod dm_wire;
mod dream_machine;
mod error;
mod extract;
mod fast_poll;
mod files;
mod luma;
mod openapi;
mod metrics;
mod ops;
mod page;
pub mod rate;
pub mod server;
pub mod wire;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, Method};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use fast_poll::App;
pub use openapi::{document as openapi_document, document_json as openapi_json};

use crate::blobs::{BlobStore, LocalBlobs};
use crate::keys::AdminToken;
use crate::tasks::model::{Surface, Task, Tier};
use crate::tasks::{Engine, TaskInfo};

/// What every handler can reach. axum clones the state for every request and every
/// middleware, so it is one reference-counted pointer.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct Shared {
    pub engine: Arc<Engine>,
    /// Configured public origin for links; `None` uses the request's `Host`.
    pub public_url: Option<String>,
    /// Validity of signed links in task objects and `download_video_url`.
    pub link_ttl: Duration,
    pub body_limit: usize,
    /// Time a client has to send a request's body (408 beyond).
    pub body_timeout: Duration,
    /// Memory that large request bodies may hold at once.
    pub body_budget: Arc<body_budget::BodyBudget>,
    /// Per-key request budget; `None` means unlimited.
    pub rate_limit: Option<Arc<rate::KeyRateLimit>>,
    pub ready: Arc<AtomicBool>,
    /// The admin API's credential.
    pub admin: Arc<AdminToken>,
}

/// HTTP settings that are not handler state.
pub struct HttpConfig {
    /// `*` or a list of allowed origins.
    pub cors_origins: Vec<String>,
    /// Set when blobs are local files that `/files` serves.
    pub local_blobs: Option<Arc<LocalBlobs>>,
}

/// The whole HTTP application: the router behind the polling fast path.
pub fn app(state: AppState, config: HttpConfig) -> App {
    let any_origin = allows_any_origin(&config.cors_origins);
    let ids = RequestIds::new();
    App::new(router(state.clone(), config, ids.clone()), state, ids, any_origin)
}

/// The header every answer carries its request id in.
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn router(state: AppState, config: HttpConfig, ids: RequestIds) -> Router {
    let mut app = Router::new()
        .merge(luma::routes("/luma", Tier::Relax))
        .merge(luma::routes("/pro/luma", Tier::Pro))
        .merge(dream_machine::routes())
        .merge(ops::routes())
        .merge(openapi::routes())
        .merge(metrics::routes())
        .merge(admin::routes())
        .merge(page::routes());
    if let Some(blobs) = config.local_blobs {
        app = app.merge(files::routes(blobs));
    }
    let request_id = REQUEST_ID.clone();
    app.fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "this method is not allowed on this path")
        })
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), body_budget::admit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(RequestBodyTimeoutLayer::new(state.body_timeout))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal("a handler panicked"))
        }))
        .layer(TraceLayer::new_for_http())
        .layer(cors(&config.cors_origins))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, ids))
}

/// The body of a webhook delivery: the task in the shape of the surface that created it,
/// with links signed now for `ttl`.
pub fn webhook_body(task: &Task, blobs: &dyn BlobStore, origin: &str, ttl: Duration) -> Vec<u8> {
    let body = match task.params.surface {
        Surface::Reseller => {
            let info = TaskInfo { task: task.clone(), queue_position: None, estimate_wait_seconds: None };
            serde_json::to_vec(&wire::TaskView::new(&info, blobs, origin, ttl))
        }
        Surface::DreamMachine => serde_json::to_vec(&dm_wire::GenerationView::new(task, blobs, origin, ttl)),
    };
    body.unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not serialise a webhook body");
        b"{}".to_vec()
    })
}

/// Request ids: a random per-process prefix and a counter. Unique like UUIDs for
/// matching an answer to its log lines, but without asking the OS for randomness on
/// every request (a system call on the polling hot path).
#[derive(Clone)]
struct RequestIds {
    prefix: u64,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> RequestIds {
        RequestIds { prefix: rand::random(), next: Arc::new(std::sync::atomic::AtomicU64::new(1)) }
    }
}

impl RequestIds {
    fn next(&self) -> header::HeaderValue {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{:016x}-{n:08x}", self.prefix);
        header::HeaderValue::from_str(&id).expect("hex digits and a dash")
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        Some(RequestId::new(self.next()))
    }
}

fn allows_any_origin(origins: &[String]) -> bool {
    origins.iter().any(|o| o == "*") || origins.is_empty()
}

/// Browsers call the API cross-origin with Bearer keys (never cookies).
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if allows_any_origin(origins) {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS, Method::HEAD])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("idempotency-key")])
        .expose_headers([HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(3600))
}
