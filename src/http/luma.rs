//! The reseller surface (API.md §3): `/luma` creates relax tasks, `/pro/luma` pro tasks;
//! reads work under either prefix.

use axum::extract::{RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use uuid::Uuid;

use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Caller, IdempotencyKey, Origin, PathParam};
use super::wire::{DownloadLink, ExtendBody, GenerationBody, TaskView};
use super::AppState;
use crate::blobs::LinkKind;
use crate::tasks::model::Tier;
use crate::tasks::request::{parse_generation, RequestKind};
use crate::tasks::TaskInfo;

/// Routes under `prefix`; `tier` is the tier that creates under it. Full paths rather
/// than a nested router: nesting costs a second route lookup on every poll.
pub fn routes(prefix: &str, tier: Tier) -> Router<AppState> {
    let create = move |s: State<AppState>, c: Caller, o: Origin, i: IdempotencyKey, b: Body| create(s, c, o, i, b, tier);
    let extend =
        move |s: State<AppState>, c: Caller, o: Origin, p: PathParam, i: IdempotencyKey, b: Body| extend(s, c, o, p, i, b, tier);
    Router::new()
        .route(&format!("{prefix}/generations"), post(create).get(list))
        .route(&format!("{prefix}/generations/"), post(create).get(list))
        .route(&format!("{prefix}/generations/{{id}}"), get(read))
        .route(&format!("{prefix}/generations/{{id}}/extend"), post(extend))
        .route(&format!("{prefix}/generations/{{id}}/download_video_url"), get(download_video_url))
}

/// Create a task (relax under `/luma`, pro under `/pro/luma`).
#[utoipa::path(post, path = "/generations", operation_id = "create", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key answers the task it created")),
    request_body(content = GenerationBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The new task (or, for a repeated Idempotency-Key, the task it created)", body = TaskView),
        (status = 400, description = "The body breaks the contract; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "The key may not use this tier or model", body = ErrorBody),
        (status = 413, description = "The body or an image is larger than the limit the message names", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with a different request", body = ErrorBody),
        (status = 429, description = "Rate limited or the relax queue is full; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "No upstream can take the task, or no room to receive a body over 1 MiB in time (see Retry-After)", body = ErrorBody),
    ))]
pub(super) async fn create(
    State(state): State<AppState>,
    Caller(key): Caller,
    Origin(origin): Origin,
    idempotency: IdempotencyKey,
    Body(body): Body,
    tier: Tier,
) -> Result<Json<TaskView>, ApiError> {
    let mut req = parse_generation(&body, RequestKind::Create).map_err(|e| ApiError::bad_request(e.0))?;
    req.idempotency = idempotency.with_request(&format!("luma:{}:create", tier.as_str()), &body);
    // The raw body (up to the body limit) is not needed while images are checked.
    drop(body);
    let info = state.engine.create(&key, tier, req).await?;
    Ok(Json(view(&state, &info, &origin)))
}

/// Continue a completed task's video.
#[utoipa::path(post, path = "/generations/{id}/extend", operation_id = "extend", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The parent task"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key answers the task it created"),
    ),
    request_body(content = ExtendBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The new task", body = TaskView),
        (status = 400, description = "The body breaks the contract; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "The key may not use this tier or model", body = ErrorBody),
        (status = 404, description = "No such task for this key", body = ErrorBody),
        (status = 409, description = "The parent is not completed", body = ErrorBody),
        (status = 413, description = "The body or an image is larger than the limit the message names", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with a different request", body = ErrorBody),
        (status = 429, description = "Rate limited or the relax queue is full; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "No upstream can take the task, or no room to receive a body over 1 MiB in time (see Retry-After)", body = ErrorBody),
    ))]
pub(super) async fn extend(
    State(state): State<AppState>,
    Caller(key): Caller,
    Origin(origin): Origin,
    PathParam(id): PathParam,
    idempotency: IdempotencyKey,
    Body(body): Body,
    tier: Tier,
) -> Result<Json<TaskView>, ApiError> {
    let parent = task_id(&id)?;
    let mut req = parse_generation(&body, RequestKind::Extend).map_err(|e| ApiError::bad_request(e.0))?;
    req.idempotency = idempotency.with_request(&format!("luma:{}:extend:{parent}", tier.as_str()), &body);
    drop(body);
    let info = state.engine.extend(&key, tier, parent, req).await?;
    Ok(Json(view(&state, &info, &origin)))
}

/// The task: the hot path that clients poll.
#[utoipa::path(get, path = "/generations/{id}", operation_id = "get", security(("bearer" = [])),
    params(("id" = String, Path, description = "A task id")),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such task for this key", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(super) async fn read(State(state): State<AppState>, Caller(key): Caller, Origin(origin): Origin, PathParam(id): PathParam) -> Result<Json<TaskView>, ApiError> {
    let info = state.engine.get(&key, task_id(&id)?).await?;
    Ok(Json(view(&state, &info, &origin)))
}

/// The key's tasks, newest first.
#[utoipa::path(get, path = "/generations", operation_id = "list", security(("bearer" = [])),
    params(
        ("offset" = Option<u64>, Query, description = "Tasks to skip (default 0)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 100, description = "Tasks to return (default 20, at most 100)"),
    ),
    responses(
        (status = 200, description = "The tasks", body = Vec<TaskView>),
        (status = 400, description = "offset or limit is out of range", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(super) async fn list(State(state): State<AppState>, Caller(key): Caller, Origin(origin): Origin, RawQuery(query): RawQuery) -> Result<Json<Vec<TaskView>>, ApiError> {
    let (offset, limit) = page_params(query.as_deref());
    let offset = number(offset.as_deref(), "offset", 0, 0, i64::MAX as u64)?;
    let limit = number(limit.as_deref(), "limit", 20, 1, 100)?;
    let tasks = state.engine.list(&key, offset, limit).await?;
    Ok(Json(tasks.iter().map(|t| view(&state, t, &origin)).collect()))
}

/// A fresh signed link to the task's video.
#[utoipa::path(get, path = "/generations/{id}/download_video_url", operation_id = "download_video_url", security(("bearer" = [])),
    params(("id" = String, Path, description = "A task id")),
    responses(
        (status = 200, description = "A signed link, valid for an hour", body = DownloadLink),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such task for this key", body = ErrorBody),
        (status = 409, description = "The task has no video yet", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(super) async fn download_video_url(State(state): State<AppState>, Caller(key): Caller, Origin(origin): Origin, PathParam(id): PathParam) -> Result<Json<DownloadLink>, ApiError> {
    let video = state.engine.video(&key, task_id(&id)?).await?;
    let url = state.engine.blobs().link(&video.video_key, LinkKind::Download, state.link_ttl, &origin);
    Ok(Json(DownloadLink { url }))
}

fn view(state: &AppState, info: &TaskInfo, origin: &str) -> TaskView {
    TaskView::new(info, state.engine.blobs().as_ref(), origin, state.link_ttl)
}

/// A task id from the path; anything that is not a UUID is simply not a task.
pub(super) fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no such task"))
}

/// `offset` and `limit` of a query string, read by hand: the last value of a repeated
/// parameter wins, and nothing in a query string can fail to deserialise into axum's
/// plain-text rejection.
pub(super) fn page_params(query: Option<&str>) -> (Option<String>, Option<String>) {
    let (mut offset, mut limit) = (None, None);
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "offset" => offset = Some(value.into_owned()),
            "limit" => limit = Some(value.into_owned()),
            _ => {}
        }
    }
    (offset, limit)
}

pub(super) fn number(raw: Option<&str>, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else { return Ok(default) };
    match raw.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ if max == i64::MAX as u64 => Err(ApiError::bad_request(format!("{name} must be a non-negative 64-bit integer"))),
        _ => Err(ApiError::bad_request(format!("{name} must be an integer from {min} to {max}"))),
    }
}
