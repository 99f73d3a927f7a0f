//! Liveness and readiness for operators and load balancers.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use super::error::{ApiError, ErrorBody};
use super::wire::Status;
use super::AppState;

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
    if !state.engine.blobs().ready().await {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready: blob storage does not answer"));
    }
    if state.engine.store().count_keys().await.is_err() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready: the database does not answer"));
    }
    Ok(Json(Status { status: "ready" }))
}
