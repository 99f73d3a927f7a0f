//! A budget for large request bodies held in memory at once.
//!
//! A create with base64 keyframes is buffered whole, then parsed and decoded, so each
//! one costs a few times its size for a moment. Without a bound, twenty concurrent
//! 10 MB bodies would need half a gigabyte. Requests whose body is larger than
//! [`SMALL_BODY`] wait for a share of the budget equal to their declared size before
//! their body is read (the client's upload waits in the socket meanwhile) and hold it
//! until the answer is made. Small requests never wait, so polls and plain creates are
//! not slowed by image uploads.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;
use super::AppState;

/// Bodies up to this size are not counted.
pub const SMALL_BODY: u64 = 1024 * 1024;
/// The budget is counted in KiB (semaphore permits).
const UNIT: u64 = 1024;

pub struct BodyBudget {
    permits: Arc<Semaphore>,
    /// The whole budget, in units.
    units: u32,
    /// The longest a request waits for its share.
    wait: Duration,
}

impl BodyBudget {
    pub fn new(bytes: u64, wait: Duration) -> BodyBudget {
        let units = (bytes / UNIT).clamp(1, u32::MAX as u64) as u32;
        BodyBudget { permits: Arc::new(Semaphore::new(units as usize)), units, wait }
    }

    /// The share a body of `bytes` takes; a body larger than the budget takes all of it.
    fn share(&self, bytes: u64) -> u32 {
        (bytes.div_ceil(UNIT)).min(self.units as u64) as u32
    }
}

/// The size a request's body may have: its `Content-Length`; else exact when the body
/// knows it (none at all, say); else, for a method whose body a handler reads (chunked,
/// or an HTTP/2 stream without a length), the body limit. (The body arrives here wrapped
/// by the read timeout, which does not pass a length on, so the header comes first.)
fn declared_size(req: &Request, body_limit: usize) -> u64 {
    use axum::body::HttpBody as _;
    let header = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = header.or_else(|| req.body().size_hint().exact()) {
        return n;
    }
    match *req.method() {
        Method::POST | Method::PUT | Method::PATCH => body_limit as u64,
        _ => 0,
    }
}

/// Middleware: waits for the request's share of the budget when its body is large.
pub async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let size = declared_size(&req, state.body_limit);
    // A body declared over the limit is refused (413) as soon as it is read: no need to wait.
    if size <= SMALL_BODY || size > state.body_limit as u64 {
        return next.run(req).await;
    }
    let budget = &state.body_budget;
    let share = budget.share(size);
    match tokio::time::timeout(budget.wait, budget.permits.clone().acquire_many_owned(share)).await {
        Ok(Ok(_held)) => next.run(req).await,
        _ => {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server is receiving other large request bodies and had no room for this one ({size} bytes) within {} seconds; retry later",
                    budget.wait.as_secs()
                ),
            )
            .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_takes_its_size_but_never_more_than_the_budget() {
        let budget = BodyBudget::new(64 * 1024 * 1024, Duration::from_secs(1));
        assert_eq!(budget.share(10 * 1024 * 1024), 10 * 1024);
        assert_eq!(budget.share(1), 1);
        assert_eq!(budget.share(1 << 40), 64 * 1024, "a huge body waits for the whole budget, not forever");
    }

    fn request(method: Method, length: Option<u64>, body: axum::body::Body) -> Request {
        let mut builder = axum::http::Request::builder().method(method).uri("/luma/generations");
        if let Some(n) = length {
            builder = builder.header(header::CONTENT_LENGTH, n);
        }
        builder.body(body).unwrap()
    }

    #[test]
    fn a_declared_length_counts_even_when_the_body_hides_it() {
        // Wrapped bodies (the read timeout's) report no length: the header must decide,
        // or every small create would be charged the whole body limit and wait in line.
        let unknown = || axum::body::Body::from_stream(futures_util::stream::empty::<Result<axum::body::Bytes, std::io::Error>>());
        assert_eq!(declared_size(&request(Method::POST, Some(200), unknown()), 30_000_000), 200);
        assert_eq!(declared_size(&request(Method::POST, None, unknown()), 30_000_000), 30_000_000, "a body of unknown length may be as large as the limit");
        assert_eq!(declared_size(&request(Method::GET, None, unknown()), 30_000_000), 0, "handlers of GET never read a body");
        assert_eq!(declared_size(&request(Method::POST, None, axum::body::Body::from("12345")), 30_000_000), 5);
    }

    #[tokio::test]
    async fn bodies_wait_while_the_budget_is_spent() {
        let budget = BodyBudget::new(20 * 1024 * 1024, Duration::from_millis(50));
        let first = budget.permits.clone().acquire_many_owned(budget.share(15 * 1024 * 1024)).await.unwrap();
        let second = tokio::time::timeout(budget.wait, budget.permits.clone().acquire_many_owned(budget.share(10 * 1024 * 1024))).await;
        assert!(second.is_err(), "a body that does not fit must wait");
        drop(first);
        let third = tokio::time::timeout(budget.wait, budget.permits.clone().acquire_many_owned(budget.share(10 * 1024 * 1024))).await;
        assert!(third.is_ok(), "the budget comes back when an earlier body is done");
    }
}
