//! `GET /metrics` (Prometheus text format) and the middleware that counts every answer
//! by method, matched route and status, with its latency.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// Prometheus metrics (OpenMetrics text); names and labels in docs/OPERATIONS.md.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "ops",
    responses((status = 200, description = "Every metric", content_type = "application/openmetrics-text", body = String)))]
pub(super) async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let levels = state.engine.metric_levels().await.map_err(ApiError::internal)?;
    let text = state.engine.metrics().render(&levels);
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

/// Counts the request under its route pattern, never its raw path, so that ids in paths
/// do not explode the label set.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", |m| m.as_str());
    state.engine.metrics().request(&method, route, response.status().as_u16(), started.elapsed());
    response
}
