//! Liveness and readiness for operators and load balancers.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is alive.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process accepts work: started, not shutting down, storage answering.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.ready.load(Ordering::SeqCst) {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready: starting or shutting down"));
    }
    if !state.engine.blobs().ready().await {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready: blob storage does not answer"));
    }
    if state.engine.store().count_keys().await.is_err() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready: the database does not answer"));
    }
    Ok(Json(json!({"status": "ready"})))
}
