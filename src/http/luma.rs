//! The reseller surface (API.md §3): `/luma` creates relax tasks, `/pro/luma` pro tasks;
//! reads work under either prefix.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{Body, Caller, Origin};
use super::wire::TaskView;
use super::AppState;
use crate::blobs::LinkKind;
use crate::tasks::model::Tier;
use crate::tasks::request::{parse_generation, RequestKind};
use crate::tasks::TaskInfo;

/// Routes of one prefix; `tier` is the tier that creates under it.
pub fn routes(tier: Tier) -> Router<AppState> {
    let create = move |s: State<AppState>, c: Caller, o: Origin, b: Body| create(s, c, o, b, tier);
    let extend = move |s: State<AppState>, c: Caller, o: Origin, p: Path<String>, b: Body| extend(s, c, o, p, b, tier);
    Router::new()
        .route("/generations", post(create).get(list))
        .route("/generations/", post(create).get(list))
        .route("/generations/{id}", get(read))
        .route("/generations/{id}/extend", post(extend))
        .route("/generations/{id}/download_video_url", get(download_video_url))
}

async fn create(State(state): State<AppState>, Caller(key): Caller, Origin(origin): Origin, Body(body): Body, tier: Tier) -> Result<Json<TaskView>, ApiError> {
    let req = parse_generation(&body, RequestKind::Create).map_err(|e| ApiError::bad_request(e.0))?;
    let info = state.engine.create(&key, tier, req).await?;
    Ok(Json(view(&state, &info, &origin)))
}

async fn extend(
    State(state): State<AppState>,
    Caller(key): Caller,
    Origin(origin): Origin,
    Path(id): Path<String>,
    Body(body): Body,
    tier: Tier,
) -> Result<Json<TaskView>, ApiError> {
    let parent = task_id(&id)?;
    let req = parse_generation(&body, RequestKind::Extend).map_err(|e| ApiError::bad_request(e.0))?;
    let info = state.engine.extend(&key, tier, parent, req).await?;
    Ok(Json(view(&state, &info, &origin)))
}

async fn read(State(state): State<AppState>, Caller(key): Caller, Origin(origin): Origin, Path(id): Path<String>) -> Result<Json<TaskView>, ApiError> {
    let info = state.engine.get(&key, task_id(&id)?).await?;
    Ok(Json(view(&state, &info, &origin)))
}

#[derive(Deserialize)]
struct Page {
    offset: Option<String>,
    limit: Option<String>,
}

async fn list(State(state): State<AppState>, Caller(key): Caller, Origin(origin): Origin, Query(page): Query<Page>) -> Result<Json<Vec<TaskView>>, ApiError> {
    let offset = number(page.offset.as_deref(), "offset", 0, 0, u64::MAX)?;
    let limit = number(page.limit.as_deref(), "limit", 20, 1, 100)?;
    let tasks = state.engine.list(&key, offset, limit).await?;
    Ok(Json(tasks.iter().map(|t| view(&state, t, &origin)).collect()))
}

async fn download_video_url(State(state): State<AppState>, Caller(key): Caller, Origin(origin): Origin, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let video = state.engine.video(&key, task_id(&id)?).await?;
    let url = state.engine.blobs().link(&video.video_key, LinkKind::Download, state.link_ttl, &origin);
    Ok(Json(json!({ "url": url })))
}

fn view(state: &AppState, info: &TaskInfo, origin: &str) -> TaskView {
    TaskView::new(info, state.engine.blobs().as_ref(), origin, state.link_ttl)
}

/// A task id from the path; anything that is not a UUID is simply not a task.
fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no such task"))
}

fn number(raw: Option<&str>, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else { return Ok(default) };
    match raw.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ if max == u64::MAX => Err(ApiError::bad_request(format!("{name} must be a non-negative integer"))),
        _ => Err(ApiError::bad_request(format!("{name} must be an integer from {min} to {max}"))),
    }
}
