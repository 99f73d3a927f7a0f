//! The polling fast path: `GET /luma/generations/{id}` (and under `/pro/luma`) answered
//! from memory, in front of the router.
//!
//! Polling is most of a busy deployment's traffic. When the caller's key and the task
//! are both in memory (the key cache and the store's task cache), the answer needs no
//! I/O, and going through routing and the middleware stack would cost several times
//! the work of the answer itself. This path answers exactly those requests, with the
//! same body and headers the router would give (a test compares them); anything else,
//! including every error, a queued task (its queue standing is read from the store),
//! a request with an `Origin` (CORS decides per origin) or a rate-limited key, goes
//! to the router unchanged.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::Router;
use futures_util::future::{Either, Ready};
use tower::Service;
use uuid::Uuid;

use super::extract::{bearer_secret, origin_of};
use super::wire::TaskView;
use super::{AppState, RequestIds};
use crate::tasks::model::{State, Task};
use crate::tasks::TaskInfo;

/// The router with the polling fast path in front of it.
#[derive(Clone)]
pub struct App {
    router: Router,
    state: AppState,
    ids: RequestIds,
    /// The CORS headers the router adds to an answer to a request without `Origin`,
    /// when any origin is allowed; `None` (the fast path stands aside) otherwise.
    cors: Option<[(header::HeaderName, HeaderValue); 3]>,
    /// Bodies already rendered for unchanged tasks.
    rendered: Arc<Rendered>,
}

impl App {
    pub(super) fn new(router: Router, state: AppState, ids: RequestIds, any_origin: bool) -> App {
        let cors = any_origin.then(|| {
            [
                (header::VARY, HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers")),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
                (header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("x-request-id")),
            ]
        });
        App { router, state, ids, cors, rendered: Arc::default() }
    }

    /// The answer from memory, or `None` when the router must answer.
    fn answer<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        let started = Instant::now();
        let cors = self.cors.as_ref()?;
        if req.method() != Method::GET || req.headers().contains_key(header::ORIGIN) || req.uri().query().is_some() {
            return None;
        }
        let (route, id) = poll_route(req.uri().path())?;
        let id = Uuid::parse_str(id).ok()?;
        let secret = bearer_secret(req.headers()).ok()?;
        let key = self.state.engine.cached_key(secret)?;
        let task = self.state.engine.store().cached_task(id)?;
        if task.key_id != key.id || task.deleted || task.is_queued() {
            return None;
        }
        if let Some(limit) = &self.state.rate_limit {
            limit.check(&key.id).ok()?;
        }
        let origin = origin_of(req.headers(), req.uri(), self.state.public_url.as_deref());
        let render = || {
            let info = TaskInfo { task: Task::clone(&task), queue_position: None, estimate_wait_seconds: None };
            let view = TaskView::new(&info, self.state.engine.blobs().as_ref(), &origin, self.state.link_ttl);
            serde_json::to_vec(&view).ok().map(Bytes::from)
        };
        // A completed task's links are signed at the time of the answer: never memoised.
        let body = if task.state == State::Completed { render()? } else { self.rendered.get_or_render(&task, &origin, render)? };
        let mut response = Response::new(Body::from(body));
        let headers: &mut HeaderMap = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in cors {
            headers.insert(name.clone(), value.clone());
        }
        // Like the router's SetRequestIdLayer: a request id the client sent is kept.
        let request_id = req.headers().get(&super::REQUEST_ID).cloned().unwrap_or_else(|| self.ids.next());
        headers.insert(super::REQUEST_ID.clone(), request_id);
        let metrics = self.state.engine.metrics();
        metrics.polls_from_memory.inc();
        metrics.request(&Method::GET, route, StatusCode::OK.as_u16(), started.elapsed());
        Some(response)
    }
}

/// The answer body last rendered for each task, kept while the task is unchanged: the
/// store's cache hands out the same `Arc` until the task changes, and an entry holds
/// its `Arc`, so an address cannot be reused for another version while it is here.
#[derive(Default)]
struct Rendered {
    bodies: Mutex<HashMap<Uuid, (Arc<Task>, String, Bytes)>>,
}

/// Most bodies kept; beyond it the memo starts over.
const RENDERED_CAPACITY: usize = 4096;

impl Rendered {
    fn get_or_render(&self, task: &Arc<Task>, origin: &str, render: impl FnOnce() -> Option<Bytes>) -> Option<Bytes> {
        if let Some((version, for_origin, body)) = self.bodies.lock().expect("rendered bodies").get(&task.id) {
            if Arc::ptr_eq(version, task) && for_origin == origin {
                return Some(body.clone());
            }
        }
        let body = render()?;
        let mut bodies = self.bodies.lock().expect("rendered bodies");
        if bodies.len() >= RENDERED_CAPACITY {
            bodies.clear();
        }
        bodies.insert(task.id, (Arc::clone(task), origin.to_string(), body.clone()));
        Some(body)
    }
}

/// The route pattern and the id of a poll path.
fn poll_route(path: &str) -> Option<(&'static str, &str)> {
    if let Some(id) = path.strip_prefix("/luma/generations/") {
        return (!id.contains('/')).then_some(("/luma/generations/{id}", id));
    }
    if let Some(id) = path.strip_prefix("/pro/luma/generations/") {
        return (!id.contains('/')).then_some(("/pro/luma/generations/{id}", id));
    }
    None
}

impl<B> Service<Request<B>> for App
where
    Router: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<Body>, Infallible>>, <Router as Service<Request<B>>>::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.answer(&req) {
            Some(response) => Either::Left(futures_util::future::ready(Ok(response))),
            None => Either::Right(self.router.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_rendered_again_only_for_a_new_version_or_origin() {
        let rendered = Rendered::default();
        let renders = std::cell::Cell::new(0);
        let render = || {
            renders.set(renders.get() + 1);
            Some(Bytes::from(format!("body {}", renders.get())))
        };
        let v1 = Arc::new(Task::sample());
        assert_eq!(rendered.get_or_render(&v1, "http://a", render).unwrap(), "body 1");
        assert_eq!(rendered.get_or_render(&v1, "http://a", render).unwrap(), "body 1", "same version: memoised");
        let v2 = Arc::new(Task::clone(&v1));
        assert_eq!(rendered.get_or_render(&v2, "http://a", render).unwrap(), "body 2", "a new version is rendered");
        assert_eq!(rendered.get_or_render(&v2, "http://b", render).unwrap(), "body 3", "another origin is rendered");
        assert_eq!(renders.get(), 3);
    }

    #[test]
    fn only_poll_paths_are_recognised() {
        assert_eq!(poll_route("/luma/generations/abc"), Some(("/luma/generations/{id}", "abc")));
        assert_eq!(poll_route("/pro/luma/generations/abc"), Some(("/pro/luma/generations/{id}", "abc")));
        assert_eq!(poll_route("/luma/generations/abc/extend"), None);
        assert_eq!(poll_route("/luma/generations/abc/download_video_url"), None);
        assert_eq!(poll_route("/luma/generations"), None);
        assert_eq!(poll_route("/dream-machine/v1/generations/abc"), None);
    }
}
