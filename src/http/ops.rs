//! Liveness and readiness for operators and load balancers.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use super::error::{ApiError, ErrorBody};
use super::wire::Status;
use super::AppState;

/// How long readiness waits for each backend.
const READY_PROBE: std::time::Duration = std::time::Duration::from_secs(3);

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "ops",
    responses((status = 200, description = "Alive", body = Status)))]
pub(super) async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// The process accepts work: started, not shutting down, storage answering.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Starting, shutting down, or storage does not answer", body = ErrorBody),
    ))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if !state.ready.load(Ordering::SeqCst) {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready: starting or shutting down"));
    }
    // A load balancer must get an answer quickly, even when a backend hangs.
    if !tokio::time::timeout(READY_PROBE, state.engine.blobs().ready()).await.unwrap_or(false) {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready: blob storage does not answer"));
    }
    if !tokio::time::timeout(READY_PROBE, state.engine.store().count_keys()).await.is_ok_and(|r| r.is_ok()) {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready: the database does not answer"));
    }
    Ok(Json(Status { status: "ready" }))
}
