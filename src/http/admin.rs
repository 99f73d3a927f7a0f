//! The admin API (`/admin/...`): what operators need to see and change at a glance —
//! accounts with health, slots in use and cooldowns; queue depth per tier; keys (list,
//! create, revoke); recent failures with reasons. The web page's operator view and any
//! script use it alike, with `Authorization: Bearer <admin token>`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{Admin, Body};
use super::wire::rfc3339_micros;
use super::AppState;
use crate::accounts::AccountHealth;
use crate::keys::{issue, ApiKey};
use crate::tasks::model::{Model, Tier};
use crate::tasks::AccountStatus;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/accounts", get(accounts))
        .route("/admin/accounts/{id}/enable", post(enable))
        .route("/admin/accounts/{id}/disable", post(disable))
        .route("/admin/queue", get(queue))
        .route("/admin/keys", get(keys).post(create_key))
        .route("/admin/keys/{id}", delete(revoke_key))
        .route("/admin/failures", get(failures))
}

/// An upstream account and how it is doing.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    id: String,
    provider: String,
    /// `enabled`, `cooldown` (rate limited upstream until `cooldown_until`) or `disabled`.
    health: &'static str,
    enabled: bool,
    disabled_reason: Option<String>,
    /// RFC 3339; set while the account cools down.
    cooldown_until: Option<String>,
    concurrency: u32,
    /// Tasks holding one of its slots.
    in_flight: u32,
    tiers: Vec<&'static str>,
    models: Vec<&'static str>,
    weight: u32,
}

impl From<&AccountStatus> for AccountView {
    fn from(s: &AccountStatus) -> Self {
        let a = &s.account;
        AccountView {
            id: a.id.clone(),
            provider: a.provider.clone(),
            health: s.health.as_str(),
            enabled: a.enabled,
            disabled_reason: a.disabled_reason.clone(),
            cooldown_until: a.cooldown_until.filter(|_| s.health == AccountHealth::Cooldown).map(rfc3339_micros),
            concurrency: a.concurrency,
            in_flight: s.in_flight,
            tiers: a.tiers.iter().map(|t| t.as_str()).collect(),
            models: a.models.iter().map(|m| m.as_str()).collect(),
            weight: a.weight,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountsView {
    accounts: Vec<AccountView>,
}

/// The pool of upstream accounts.
#[utoipa::path(get, path = "/admin/accounts", operation_id = "admin_accounts", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, description = "Every account with its health and slots in use", body = AccountsView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(super) async fn accounts(State(state): State<AppState>, _: Admin) -> Result<Json<AccountsView>, ApiError> {
    let pool = state.engine.pool_status().await.map_err(ApiError::internal)?;
    Ok(Json(AccountsView { accounts: pool.accounts.iter().map(AccountView::from).collect() }))
}

#[derive(Serialize, ToSchema)]
pub struct EnabledView {
    id: String,
    enabled: bool,
}

/// Lets an account take work again.
#[utoipa::path(post, path = "/admin/accounts/{id}/enable", operation_id = "admin_enable_account", tag = "admin",
    security(("admin" = [])), params(("id" = String, Path, description = "An account id")),
    responses(
        (status = 200, description = "Enabled", body = EnabledView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub(super) async fn enable(State(state): State<AppState>, _: Admin, Path(id): Path<String>) -> Result<Json<EnabledView>, ApiError> {
    set_enabled(&state, id, true, None).await
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    /// Shown to operators and in the failure of extends pinned to the account.
    reason: Option<String>,
}

/// Stops an account from taking new work; its running tasks finish.
#[utoipa::path(post, path = "/admin/accounts/{id}/disable", operation_id = "admin_disable_account", tag = "admin",
    security(("admin" = [])), params(("id" = String, Path, description = "An account id")),
    request_body(content = Option<DisableBody>, content_type = "application/json", description = "Optional"),
    responses(
        (status = 200, description = "Disabled", body = EnabledView),
        (status = 400, description = "The body is not the expected JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub(super) async fn disable(State(state): State<AppState>, _: Admin, Path(id): Path<String>, Body(body): Body) -> Result<Json<EnabledView>, ApiError> {
    let body: DisableBody = if body.iter().all(u8::is_ascii_whitespace) {
        DisableBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body ({e}); send {{\"reason\": \"...\"}}")))?
    };
    let reason = body.reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "disabled by an operator".into());
    set_enabled(&state, id, false, Some(&reason)).await
}

async fn set_enabled(state: &AppState, id: String, enabled: bool, reason: Option<&str>) -> Result<Json<EnabledView>, ApiError> {
    if !state.engine.store().set_enabled(&id, enabled, reason).await.map_err(ApiError::internal)? {
        return Err(ApiError::not_found(format!("no account with id {id}")));
    }
    tracing::info!(account = %id, enabled, "account changed through the admin API");
    Ok(Json(EnabledView { id, enabled }))
}

#[derive(Serialize, ToSchema)]
pub struct QueueDepth {
    relax: u64,
    pro: u64,
}

#[derive(Serialize, ToSchema)]
pub struct QueueView {
    /// Tasks waiting for an account, per tier.
    depth: QueueDepth,
    /// Slots of the enabled accounts.
    slots: u32,
    /// Tasks holding a slot.
    in_flight: u32,
}

/// The queue per tier and the pool's use.
#[utoipa::path(get, path = "/admin/queue", operation_id = "admin_queue", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, description = "Queue depth per tier and slots in use", body = QueueView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(super) async fn queue(State(state): State<AppState>, _: Admin) -> Result<Json<QueueView>, ApiError> {
    let pool = state.engine.pool_status().await.map_err(ApiError::internal)?;
    let depth = |tier: Tier| pool.queue_depth.iter().find(|(t, _)| *t == tier).map_or(0, |(_, n)| *n);
    Ok(Json(QueueView {
        depth: QueueDepth { relax: depth(Tier::Relax), pro: depth(Tier::Pro) },
        slots: pool.accounts.iter().filter(|s| s.account.enabled).map(|s| s.account.concurrency).sum(),
        in_flight: pool.accounts.iter().map(|s| s.in_flight).sum(),
    }))
}

/// An API key; `secret` only in the answer that created it.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    id: String,
    name: String,
    tiers: Vec<&'static str>,
    models: Vec<&'static str>,
    created_at: String,
    revoked_at: Option<String>,
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        KeyView {
            id: k.id.clone(),
            name: k.name.clone(),
            tiers: k.tiers.iter().map(|t| t.as_str()).collect(),
            models: k.models.iter().map(|m| m.as_str()).collect(),
            created_at: rfc3339_micros(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339_micros),
            active: k.revoked_at.is_none(),
            secret: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeysView {
    keys: Vec<KeyView>,
}

/// Every key, never its secret.
#[utoipa::path(get, path = "/admin/keys", operation_id = "admin_keys", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, description = "The keys", body = KeysView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(super) async fn keys(State(state): State<AppState>, _: Admin) -> Result<Json<KeysView>, ApiError> {
    let keys = state.engine.store().list_keys().await.map_err(ApiError::internal)?;
    Ok(Json(KeysView { keys: keys.iter().map(KeyView::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1 to 100 characters.
    name: String,
    /// Default: every tier.
    tiers: Option<Vec<String>>,
    /// Default: every model.
    models: Option<Vec<String>>,
}

/// Creates a key; the secret is in this answer once and never again.
#[utoipa::path(post, path = "/admin/keys", operation_id = "admin_create_key", tag = "admin", security(("admin" = [])),
    request_body(content = NewKey, content_type = "application/json"),
    responses(
        (status = 201, description = "The key, with its secret", body = KeyView),
        (status = 400, description = "The body breaks the rules; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(super) async fn create_key(State(state): State<AppState>, _: Admin, Body(body): Body) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let req: NewKey = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid key request ({e}); send {{\"name\": \"...\", \"tiers\": [\"relax\", \"pro\"], \"models\": [\"ray-v2\"]}}"
        ))
    })?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 characters"));
    }
    let tiers = match req.tiers {
        Some(list) => crate::keys::parse_tiers(&list.join(",")).map_err(|e| ApiError::bad_request(format!("tiers: {e}")))?,
        None => Tier::ALL.to_vec(),
    };
    let models = match req.models {
        Some(list) => crate::keys::parse_models(&list.join(",")).map_err(|e| ApiError::bad_request(format!("models: {e}")))?,
        None => Model::ALL.to_vec(),
    };
    let issued = issue(name, tiers, models);
    state.engine.store().insert_key(&issued.key, &issued.hash).await.map_err(ApiError::internal)?;
    tracing::info!(key.id = %issued.key.id, "key created through the admin API");
    let view = KeyView { secret: Some(issued.secret), ..KeyView::from(&issued.key) };
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Serialize, ToSchema)]
pub struct RevokedView {
    id: String,
    active: bool,
}

/// Revokes a key; requests with it are refused at once.
#[utoipa::path(delete, path = "/admin/keys/{id}", operation_id = "admin_revoke_key", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "A key id")),
    responses(
        (status = 200, description = "Revoked", body = RevokedView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No active key has this id", body = ErrorBody),
    ))]
pub(super) async fn revoke_key(State(state): State<AppState>, _: Admin, Path(id): Path<String>) -> Result<Json<RevokedView>, ApiError> {
    if !state.engine.revoke_key(&id).await.map_err(ApiError::internal)? {
        return Err(ApiError::not_found(format!("no active key with id {id}")));
    }
    tracing::info!(key.id = %id, "key revoked through the admin API");
    Ok(Json(RevokedView { id, active: false }))
}

#[derive(Deserialize, IntoParams)]
pub struct FailuresQuery {
    /// Failures to return, 1 to 200 (default 20).
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FailureView {
    task_id: String,
    key_id: String,
    tier: &'static str,
    account: Option<String>,
    failure_reason: String,
    failed_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct FailuresView {
    failures: Vec<FailureView>,
}

/// The most recent failed tasks with their reasons, newest first.
#[utoipa::path(get, path = "/admin/failures", operation_id = "admin_failures", tag = "admin", security(("admin" = [])),
    params(FailuresQuery),
    responses(
        (status = 200, description = "Recent failures", body = FailuresView),
        (status = 400, description = "limit is out of range", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(super) async fn failures(State(state): State<AppState>, _: Admin, Query(q): Query<FailuresQuery>) -> Result<Json<FailuresView>, ApiError> {
    let limit = match q.limit.as_deref().filter(|l| !l.is_empty()) {
        None => 20,
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 200"))?,
    };
    let failures = state.engine.store().recent_failures(limit).await.map_err(ApiError::internal)?;
    let failures = failures
        .iter()
        .map(|f| FailureView {
            task_id: f.task_id.to_string(),
            key_id: f.key_id.clone(),
            tier: f.tier.as_str(),
            account: f.account_id.clone(),
            failure_reason: f.reason.clone(),
            failed_at: rfc3339_micros(f.failed_at),
        })
        .collect();
    Ok(Json(FailuresView { failures }))
}
