//! The Dream Machine surface (API.md §7), wire-compatible with Luma's official API so
//! that the unmodified `lumaai` SDK works with `base_url=".../dream-machine/v1"`.
//!
//! Tasks are the same pool as the reseller surface: a generation made here is a task
//! there and the other way round. The tier of tasks made here is the key's
//! (`lumagate keys create --dm-tier`, default its best tier).
//!
//! The SDK retries 408, 409, 429 and 5xx. So a refusal that retrying cannot fix is never
//! one of those here (an extend of an unfinished generation is a 400, not the reseller
//! surface's 409), and nothing after a task is queued can turn into an error.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::dm_wire::{generation_id, parse_create, Credits, DmCreate, GenerationList, GenerationView, Pong, CONCEPTS};
use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Caller, IdempotencyKey, Origin, PathParam};
use super::luma::{number, page_params};
use super::AppState;
use crate::tasks::{EngineError, TaskInfo};

/// Credit balance reported by `GET /credits`, in US cents: lumagate keys have no credit
/// limit, so this is a large constant that never runs out.
pub const UNLIMITED_CREDITS: f64 = 1e9;

pub fn routes() -> Router<AppState> {
    const P: &str = "/dream-machine/v1";
    Router::new()
        .route(&format!("{P}/generations"), post(create_legacy).get(list))
        .route(&format!("{P}/generations/video"), post(create))
        .route(&format!("{P}/generations/concepts/list"), get(concepts))
        .route(&format!("{P}/generations/{{id}}"), get(read).delete(delete))
        .route(&format!("{P}/ping"), get(ping))
        .route(&format!("{P}/credits"), get(credits))
}

/// Create a video generation (SDK ≥ 1.11).
#[utoipa::path(post, path = "/dream-machine/v1/generations/video", operation_id = "dm_create", tag = "dream_machine", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key answers the generation it created")),
    request_body(content = Object, content_type = "application/json", description = "Luma's GenerationRequest"),
    responses(
        (status = 201, description = "The new generation (or, for a repeated Idempotency-Key, the one it created)", body = GenerationView),
        (status = 400, description = "The body is refused; `detail` says why (Luma's messages)", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "The key may not use this tier or model", body = ErrorBody),
        (status = 404, description = "A `generation` keyframe names no generation of this key", body = ErrorBody),
        (status = 413, description = "The body or an image is too large", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with a different request", body = ErrorBody),
        (status = 429, description = "The relax queue is full; see Retry-After", body = ErrorBody),
        (status = 503, description = "No upstream can take the generation, or no room to receive a body over 1 MiB in time (see Retry-After)", body = ErrorBody),
    ))]
pub(super) async fn create(
    State(state): State<AppState>,
    Caller(key): Caller,
    Origin(origin): Origin,
    idempotency: IdempotencyKey,
    Body(body): Body,
) -> Result<(StatusCode, Json<GenerationView>), ApiError> {
    let DmCreate { mut request, extend_from } = parse_create(&body).map_err(ApiError::bad_request)?;
    // Both create paths take the same body, so a retry on the other path is the same request.
    request.idempotency = idempotency.with_request("dream-machine:create", &body);
    // The raw body (up to the body limit) is not needed while images are checked.
    drop(body);
    let tier = key.dream_machine_tier();
    let info = match extend_from {
        Some(raw) => {
            let parent = generation_id(&raw).ok_or_else(|| ApiError::not_found(format!("no generation {raw}")))?;
            state.engine.extend(&key, tier, parent, request).await
        }
        None => state.engine.create(&key, tier, request).await,
    }
    .map_err(refusal)?;
    Ok((StatusCode::CREATED, Json(view(&state, &info, &origin))))
}

/// Create a video generation on the path of SDKs up to 1.10 and the curl docs.
#[utoipa::path(post, path = "/dream-machine/v1/generations", operation_id = "dm_create_legacy", tag = "dream_machine", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "As on /generations/video; both paths share keys")),
    request_body(content = Object, content_type = "application/json", description = "Luma's GenerationRequest"),
    responses(
        (status = 201, description = "The new generation", body = GenerationView),
        (status = 400, description = "The body is refused; `detail` says why", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with a different request", body = ErrorBody),
    ))]
pub(super) async fn create_legacy(
    state: State<AppState>,
    caller: Caller,
    origin: Origin,
    idempotency: IdempotencyKey,
    body: Body,
) -> Result<(StatusCode, Json<GenerationView>), ApiError> {
    create(state, caller, origin, idempotency, body).await
}

/// One generation.
#[utoipa::path(get, path = "/dream-machine/v1/generations/{id}", operation_id = "dm_get", tag = "dream_machine", security(("bearer" = [])),
    params(("id" = String, Path, description = "A generation id")),
    responses(
        (status = 200, description = "The generation", body = GenerationView),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such generation for this key", body = ErrorBody),
    ))]
pub(super) async fn read(State(state): State<AppState>, Caller(key): Caller, Origin(origin): Origin, PathParam(id): PathParam) -> Result<Json<GenerationView>, ApiError> {
    let id = generation_id(&id).ok_or_else(|| ApiError::not_found("no such generation"))?;
    let info = state.engine.get(&key, id).await.map_err(refusal)?;
    Ok(Json(view(&state, &info, &origin)))
}

/// Delete a generation: hidden from both surfaces, stopped if unfinished, no more webhooks.
#[utoipa::path(delete, path = "/dream-machine/v1/generations/{id}", operation_id = "dm_delete", tag = "dream_machine", security(("bearer" = [])),
    params(("id" = String, Path, description = "A generation id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such generation for this key", body = ErrorBody),
    ))]
pub(super) async fn delete(State(state): State<AppState>, Caller(key): Caller, PathParam(id): PathParam) -> Result<StatusCode, ApiError> {
    let id = generation_id(&id).ok_or_else(|| ApiError::not_found("no such generation"))?;
    state.engine.delete(&key, id).await.map_err(refusal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Most generations one list call returns.
const MAX_LIMIT: u64 = 1000;

/// The key's generations, newest first.
#[utoipa::path(get, path = "/dream-machine/v1/generations", operation_id = "dm_list", tag = "dream_machine", security(("bearer" = [])),
    params(
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Generations to return (default 100)"),
        ("offset" = Option<u64>, Query, description = "Generations to skip (default 0)"),
    ),
    responses(
        (status = 200, description = "A page", body = GenerationList),
        (status = 400, description = "limit or offset is out of range", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody),
    ))]
pub(super) async fn list(State(state): State<AppState>, Caller(key): Caller, Origin(origin): Origin, RawQuery(query): RawQuery) -> Result<Json<GenerationList>, ApiError> {
    let (offset, limit) = page_params(query.as_deref());
    let offset = number(offset.as_deref(), "offset", 0, 0, i64::MAX as u64)?;
    let limit = number(limit.as_deref(), "limit", 100, 1, MAX_LIMIT)?;
    // One more than asked tells whether more exist.
    let mut tasks = state.engine.list(&key, offset, limit + 1).await.map_err(refusal)?;
    let has_more = tasks.len() as u64 > limit;
    tasks.truncate(limit as usize);
    let generations: Vec<GenerationView> = tasks.iter().map(|t| view(&state, t, &origin)).collect();
    Ok(Json(GenerationList { count: generations.len(), generations, has_more, limit, offset }))
}

/// Concept keys (camera moves) that `concepts` accepts.
#[utoipa::path(get, path = "/dream-machine/v1/generations/concepts/list", operation_id = "dm_concepts", tag = "dream_machine", security(("bearer" = [])),
    responses((status = 200, description = "Concept keys", body = Vec<String>), (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody)))]
pub(super) async fn concepts(Caller(_): Caller) -> Json<&'static [&'static str]> {
    Json(CONCEPTS)
}

/// Checks the key and the service.
#[utoipa::path(get, path = "/dream-machine/v1/ping", operation_id = "dm_ping", tag = "dream_machine", security(("bearer" = [])),
    responses((status = 200, description = "pong", body = Pong), (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody)))]
pub(super) async fn ping(Caller(_): Caller) -> Json<Pong> {
    Json(Pong { message: "pong" })
}

/// The key's credit balance: keys have no credit limit, so a large constant.
#[utoipa::path(get, path = "/dream-machine/v1/credits", operation_id = "dm_credits", tag = "dream_machine", security(("bearer" = [])),
    responses((status = 200, description = "The balance in US cents", body = Credits), (status = 401, description = "Missing, unknown or revoked key", body = ErrorBody)))]
pub(super) async fn credits(Caller(_): Caller) -> Json<Credits> {
    Json(Credits { credit_balance: UNLIMITED_CREDITS })
}

/// Engine refusals as this surface answers them: a state conflict is a 400 here, since
/// the SDK would retry a 409 that no retry can fix.
fn refusal(e: EngineError) -> ApiError {
    match e {
        EngineError::NotFound => ApiError::not_found("no such generation"),
        EngineError::Conflict(m) => ApiError::bad_request(m),
        other => other.into(),
    }
}

fn view(state: &AppState, info: &TaskInfo, origin: &str) -> GenerationView {
    GenerationView::new(&info.task, state.engine.blobs().as_ref(), origin, state.link_ttl)
}
