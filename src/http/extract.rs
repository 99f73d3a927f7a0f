//! Extractors: the caller's key, the public origin for links, and a body whose
//! rejections are API errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::error::ApiError;
use super::AppState;
use crate::keys::ApiKey;
use crate::tasks::model::Idempotency;

/// The authenticated caller.
pub struct Caller(pub ApiKey);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts)?;
        let key = state
            .engine
            .authenticate(secret)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::unauthorized("invalid or revoked API key"))?;
        if let Some(limit) = &state.rate_limit {
            limit.check(&key.id)?;
        }
        Ok(Caller(key))
    }
}

/// The secret of an `Authorization: Bearer <secret>` header.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    bearer_secret(&parts.headers)
}

/// The secret of an `Authorization: Bearer <secret>` header among `headers`.
pub(super) fn bearer_secret(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header; send `Authorization: Bearer <key>`"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    // The scheme is matched exactly (case-insensitively), never by stripping characters.
    let secret = match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => &value[7..],
        _ => return Err(ApiError::unauthorized("the Authorization header must use the Bearer scheme")),
    };
    if secret.is_empty() {
        return Err(ApiError::unauthorized("the Bearer key is empty"));
    }
    Ok(secret)
}

/// A caller holding the admin token. API keys are not admin credentials, whatever their rights.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts)?;
        if state.admin.matches(secret) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized("invalid admin token (the admin API takes the admin token, not an API key)"))
        }
    }
}

/// Scheme and host that links in responses start with: the configured public URL, or
/// the request's own `Host`, so links are always absolute.
pub struct Origin(pub String);

impl FromRequestParts<AppState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Origin(origin_of(&parts.headers, &parts.uri, state.public_url.as_deref())))
    }
}

/// The origin links start with: `public_url`, else `http://` and the request's `Host`.
pub(super) fn origin_of(headers: &axum::http::HeaderMap, uri: &axum::http::Uri, public_url: Option<&str>) -> String {
    if let Some(url) = public_url {
        return url.to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The raw request body, with over-limit bodies answered as `413` naming the limit.
pub struct Body(pub Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than the limit of {} bytes", state.body_limit),
            )),
            // The body timeout surfaces as a body error; it is the client's slowness, not a bad request.
            Err(e) if is_timeout(&e) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not arrive within {} seconds", state.body_timeout.as_secs()),
            )),
            Err(e) => Err(ApiError::bad_request(format!("could not read the request body: {e}"))),
        }
    }
}

fn is_timeout(e: &axum::extract::rejection::BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The single path parameter, with a bad one (say, invalid percent-encoding) answered
/// as an API error rather than axum's plain-text rejection.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParam(value)),
            Err(e) => Err(ApiError::bad_request(format!("invalid path: {}", e.body_text()))),
        }
    }
}

/// The `Idempotency-Key` header, if sent: 1 to 255 printable ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

/// Longest accepted `Idempotency-Key` (UUIDs and ULIDs fit many times over).
const MAX_IDEMPOTENCY_KEY: usize = 255;

impl FromRequestParts<AppState> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(IdempotencyKey(None)) };
        match value.to_str() {
            Ok(v) if !v.is_empty() && v.len() <= MAX_IDEMPOTENCY_KEY && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => {
                Ok(IdempotencyKey(Some(v.to_string())))
            }
            _ => Err(ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
            ))),
        }
    }
}

impl IdempotencyKey {
    /// The key with a digest of what it was sent with: `scope` names the surface and
    /// operation (and tier or parent), `body` is the raw request body.
    pub fn with_request(self, scope: &str, body: &[u8]) -> Option<Idempotency> {
        use sha2::{Digest, Sha256};
        let key = self.0?;
        let mut digest = Sha256::new();
        digest.update(scope.as_bytes());
        digest.update([0]);
        digest.update(body);
        Some(Idempotency { key, request_hash: hex::encode(digest.finalize()) })
    }
}
