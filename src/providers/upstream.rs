//! What the HTTP upstreams share: account credentials, keyframe links the upstream can
//! fetch, and turning every HTTP or body failure into a [`ProviderError`] kind, so the
//! worker's reactions (retry, cool down, disable, fail) apply the same way to each.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::ProviderError;
use crate::accounts::Account;
use crate::blobs::{BlobStore, LinkKind};

/// How much of an unreadable upstream body an error message quotes.
const QUOTE_CHARS: usize = 200;

/// An account's secrets and settings (`credentials` JSON): `{"api_key": "...", "base_url": "..."}`.
/// `base_url` overrides the upstream's public address (a proxy, or a fake in tests).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub api_key: String,
    pub base_url: String,
}

impl Credentials {
    /// Reads the account's credentials; an account without a key cannot work at all, so
    /// it is disabled with that reason rather than failing task after task.
    pub fn of(account: &Account, default_base: &str) -> Result<Credentials, ProviderError> {
        let api_key = account.credentials.get("api_key").and_then(|v| v.as_str()).unwrap_or_default();
        if api_key.is_empty() {
            return Err(ProviderError::AccountAuth("the account has no `api_key` in its credentials".into()));
        }
        let base_url = account
            .credentials
            .get("base_url")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or(default_base)
            .trim_end_matches('/')
            .to_string();
        Ok(Credentials { api_key: api_key.to_string(), base_url })
    }
}

/// Signed, expiring links to lumagate's own copy of a keyframe: upstreams fetch images by
/// URL, and a link is all they need (no upload, no third-party host).
#[derive(Clone)]
pub struct KeyframeLinks {
    pub blobs: Arc<dyn BlobStore>,
    /// The public origin the upstream can reach; without it there is no link to give.
    pub public_url: Option<String>,
    /// Long enough for a queued upstream job to fetch the image late.
    pub ttl: Duration,
}

impl KeyframeLinks {
    /// A link to a stored keyframe, or why there is none.
    pub fn link(&self, blob_key: &str) -> Result<String, ProviderError> {
        match &self.public_url {
            Some(origin) => Ok(self.blobs.link(blob_key, LinkKind::View, self.ttl, origin)),
            None => Err(ProviderError::Rejected(
                "this upstream fetches keyframe images by URL, and lumagate has no public URL to give it (set LUMAGATE_PUBLIC_URL)".into(),
            )),
        }
    }
}

/// An HTTP client for upstream APIs, with a bounded time per request.
#[derive(Clone)]
pub struct UpstreamHttp {
    client: reqwest::Client,
}

impl UpstreamHttp {
    pub fn new(timeout: Duration) -> UpstreamHttp {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .no_proxy()
            .build()
            .expect("a TLS backend is compiled in");
        UpstreamHttp { client }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request and reads a JSON answer. Every failure is classified: network
    /// errors and timeouts are transient, statuses by [`classify`], and a body that is
    /// not the expected JSON is transient too (an upstream hiccup, never a panic).
    pub async fn json<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, ProviderError> {
        let response = request.send().await.map_err(network)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(network)?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        serde_json::from_slice(&body).map_err(|e| {
            ProviderError::Transient(format!("the upstream answered {status} with a body that is not what its API documents ({e}): {}", quote(&body)))
        })
    }
}

/// A request that did not get an answer.
pub fn network(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Transient("the upstream did not answer in time".into())
    } else {
        ProviderError::Transient(format!("could not reach the upstream: {e}"))
    }
}

/// What an error status means for the task and the account. Luma's APIs answer
/// `{"detail": "..."}` (sometimes FastAPI's list form); the detail becomes the reason.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let detail = detail(body);
    match status.as_u16() {
        401 | 403 => ProviderError::AccountAuth(format!("the upstream answered {status}: {detail}")),
        // No credits left: nothing this account submits can run until someone tops it up.
        402 => ProviderError::AccountAuth(format!("the upstream account is out of credits: {detail}")),
        429 => ProviderError::RateLimited { retry_after: retry_after(headers) },
        408 | 409 | 500..=599 => ProviderError::Transient(format!("the upstream answered {status}: {detail}")),
        _ => ProviderError::Rejected(format!("the upstream refused the request ({status}): {detail}")),
    }
}

/// The `detail` of an error body, whichever shape it has; else a quote of the body.
fn detail(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(|v| v.get("detail")) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| i.get("msg").and_then(|m| m.as_str()).map(str::to_string).unwrap_or_else(|| i.to_string()))
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
        None => quote(body),
    }
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut quoted: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().count() > QUOTE_CHARS {
        quoted.push('…');
    }
    if quoted.trim().is_empty() {
        "(empty body)".into()
    } else {
        quoted
    }
}

/// Progress for upstreams that report only a state: grows with the time since the
/// generation was created, towards (never reaching) 95 over about `typical` seconds, so
/// the engine's no-progress timeout catches only generations that stopped moving.
pub fn progress_since(created_at: Option<&str>, typical_secs: f64) -> u8 {
    use time::format_description::well_known::Rfc3339;
    let Some(created) = created_at.and_then(|c| time::OffsetDateTime::parse(c, &Rfc3339).ok()) else {
        return 10;
    };
    let elapsed = (time::OffsetDateTime::now_utc() - created).as_seconds_f64().max(0.0);
    (10.0 + 85.0 * (1.0 - (-elapsed / typical_secs.max(1.0)).exp())).min(95.0) as u8
}

/// `Retry-After` as seconds (what Luma sends); an HTTP date is rare enough to fall back
/// to the engine's default wait.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn classify_json(status: u16, body: &str) -> ProviderError {
        classify(StatusCode::from_u16(status).unwrap(), &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn credentials_are_refused_on_401_and_403_with_the_detail() {
        for status in [401, 403] {
            match classify_json(status, r#"{"detail":"Invalid API key"}"#) {
                ProviderError::AccountAuth(reason) => assert!(reason.contains("Invalid API key"), "{reason}"),
                other => panic!("{status} should disable the account, got {other:?}"),
            }
        }
    }

    #[test]
    fn out_of_credits_takes_the_account_out() {
        assert!(matches!(classify_json(402, r#"{"detail":"Insufficient credits"}"#), ProviderError::AccountAuth(r) if r.contains("credits")));
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        match classify(StatusCode::TOO_MANY_REQUESTS, &headers, br#"{"detail":"Rate limit exceeded"}"#) {
            ProviderError::RateLimited { retry_after } => assert_eq!(retry_after, Some(Duration::from_secs(7))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify_json(429, "{}"), ProviderError::RateLimited { retry_after: None }));
    }

    #[test]
    fn server_errors_and_conflicts_are_transient() {
        for status in [408, 409, 500, 502, 503] {
            assert!(matches!(classify_json(status, "oops"), ProviderError::Transient(_)), "{status}");
        }
    }

    #[test]
    fn other_client_errors_reject_the_task_with_the_detail_in_either_shape() {
        assert!(matches!(classify_json(400, r#"{"detail":"Unknown model: x"}"#), ProviderError::Rejected(r) if r.contains("Unknown model: x")));
        let list = r#"{"detail":[{"loc":["body","prompt"],"msg":"field required","type":"missing"}]}"#;
        assert!(matches!(classify_json(422, list), ProviderError::Rejected(r) if r.contains("field required")));
        assert!(matches!(classify_json(400, "<html>bad</html>"), ProviderError::Rejected(r) if r.contains("<html>")));
    }

    #[test]
    fn an_account_without_a_key_is_refused_and_base_url_overrides() {
        let mut account = Account::new("a", "luma-api", 1);
        assert!(matches!(Credentials::of(&account, "https://x/v1"), Err(ProviderError::AccountAuth(_))));
        account.credentials = serde_json::json!({"api_key": "k", "base_url": "http://127.0.0.1:9/v1/"});
        let c = Credentials::of(&account, "https://x/v1").unwrap();
        assert_eq!((c.api_key.as_str(), c.base_url.as_str()), ("k", "http://127.0.0.1:9/v1"));
    }
}
