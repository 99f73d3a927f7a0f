//! The SSRF-safe image fetcher.
//!
//! Guards, all of them needed:
//! - **IP-literal hosts** (`http://127.0.0.1/`, `http://[::1]/`, `http://0x7f000001/`,
//!   which the `url` crate normalises to an IP) never reach a resolver, so every URL,
//!   the first and each redirect target, is checked here before its request is sent.
//! - **Host names** are resolved by [`GuardedResolver`], installed in the client: it
//!   resolves with `tokio::net::lookup_host`, *drops* every answer that is not allowed
//!   and refuses the name when none remain. The connection can only go to an address
//!   that passed the check (no second lookup, so DNS rebinding cannot slip in between).
//! - **Redirects** are not followed by reqwest (`Policy::none()`); they are followed
//!   here, up to `max_redirects`, each hop re-checked as above.
//! - **No proxy** from the environment (`no_proxy()`): a proxy would resolve for us.
//! - One **timeout** covers the whole fetch (connect, redirects, body); the body is
//!   streamed and abandoned as soon as it passes `max_bytes` (a larger
//!   `Content-Length` is refused before reading). No content decoding (gzip, ...) is
//!   enabled, so the byte count is the image's.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, LOCATION};
use url::{Host, Url};

use super::decode::clip;
use super::ip;
use super::{IntakeError, IntakeLimits};

/// Fetches caller-supplied image URLs without reaching internal addresses.
///
/// Build one at startup and share it (it holds a connection pool).
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    allow: Arc<[IpAddr]>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// `limits.fetch_timeout` also bounds connecting; per-call limits come from
    /// [`super::intake`]'s `limits`. `allow_ips` are exceptions to the address rules
    /// (exact addresses, e.g. a test server on `127.0.0.2`); leave it empty in production.
    pub fn new(limits: &IntakeLimits, allow_ips: Vec<IpAddr>) -> Self {
        let allow: Arc<[IpAddr]> = allow_ips.into_iter().map(ip::canonical).collect();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                allow: allow.clone(),
            }))
            .connect_timeout(limits.fetch_timeout)
            .user_agent(concat!(
                "lumagate/",
                env!("CARGO_PKG_VERSION"),
                " (image intake)"
            ))
            .build()
            .expect("building the image-fetch HTTP client (TLS backend initialisation) failed");
        Fetcher { client, allow }
    }

    /// Fetches `url` (already known to be http or https), following redirects, within
    /// `limits.fetch_timeout` and `limits.max_bytes`.
    pub(super) async fn fetch(
        &self,
        field: &str,
        url: Url,
        limits: &IntakeLimits,
    ) -> Result<Bytes, IntakeError> {
        match tokio::time::timeout(limits.fetch_timeout, self.fetch_inner(field, url, limits)).await
        {
            Ok(result) => result,
            Err(_) => Err(IntakeError::Timeout {
                field: field.to_owned(),
                timeout: limits.fetch_timeout,
            }),
        }
    }

    async fn fetch_inner(
        &self,
        field: &str,
        mut url: Url,
        limits: &IntakeLimits,
    ) -> Result<Bytes, IntakeError> {
        let mut redirects = 0usize;
        let mut response = loop {
            self.check_url(field, &url)?;
            let response = self
                .client
                .get(url.clone())
                .header(
                    ACCEPT,
                    "image/png,image/jpeg,image/webp,image/gif;q=0.9,image/*;q=0.5",
                )
                .send()
                .await
                .map_err(|e| send_error(field, &url, limits, e))?;
            let status = response.status();
            if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                if !status.is_success() {
                    return Err(IntakeError::UpstreamStatus {
                        field: field.to_owned(),
                        status: status.as_u16(),
                    });
                }
                break response;
            }
            redirects += 1;
            if redirects > limits.max_redirects {
                return Err(IntakeError::TooManyRedirects {
                    field: field.to_owned(),
                    max: limits.max_redirects,
                });
            }
            let bad = |reason: String| IntakeError::BadRedirect {
                field: field.to_owned(),
                reason,
            };
            let location = response
                .headers()
                .get(LOCATION)
                .ok_or_else(|| {
                    bad(format!(
                        "upstream answered {} without a Location header",
                        status.as_u16()
                    ))
                })?
                .to_str()
                .map_err(|_| bad("the Location header is not valid text".to_owned()))?;
            let next = url.join(location).map_err(|e| {
                bad(format!(
                    "Location {:?} is not a valid URL: {e}",
                    clip(location, 100)
                ))
            })?;
            tracing::debug!(field, from = %url, to = %next, "image fetch follows a redirect");
            url = next;
        };

        if let Some(length) = response.content_length() {
            if length > limits.max_bytes as u64 {
                return Err(IntakeError::TooLarge {
                    field: field.to_owned(),
                    size: length,
                    limit: limits.max_bytes,
                });
            }
        }
        let expected = response.content_length().unwrap_or(0) as usize;
        let mut body = BytesMut::with_capacity(expected.min(limits.max_bytes));
        while let Some(chunk) = response.chunk().await.map_err(|e| IntakeError::Fetch {
            field: field.to_owned(),
            detail: format!(
                "reading the body from {} failed: {}",
                host_of(&url),
                root_cause(&e)
            ),
        })? {
            if body.len() + chunk.len() > limits.max_bytes {
                return Err(IntakeError::TooLargeStreamed {
                    field: field.to_owned(),
                    limit: limits.max_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// Scheme and literal-IP checks for one hop. Host names are checked by the resolver.
    fn check_url(&self, field: &str, url: &Url) -> Result<(), IntakeError> {
        let field = field.to_owned();
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(IntakeError::UnsupportedScheme {
                field,
                scheme: clip(url.scheme(), 40),
            });
        }
        let addr = match url.host() {
            None => {
                return Err(IntakeError::InvalidUrl {
                    field,
                    reason: "it has no host".to_owned(),
                })
            }
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            // Defensive: the url crate turns IP-shaped hosts into Host::Ipv4/6, but the
            // connector would skip the resolver for anything that parses as an IP.
            Some(Host::Domain(d)) => match d
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(addr) => addr,
                Err(_) => return Ok(()),
            },
        };
        ip::check(addr, &self.allow).map_err(|reason| IntakeError::ForbiddenAddress {
            field,
            addr,
            reason,
        })
    }
}

/// An HTTP client that can only connect to allowed addresses: host names go through
/// [`GuardedResolver`], redirects are not followed and no proxy is used. IP-literal
/// URLs skip the resolver, so check each URL with [`check_destination`] too.
pub fn guarded_client(allow: Vec<IpAddr>, connect_timeout: std::time::Duration, user_agent: &str) -> reqwest::Client {
    let allow: Arc<[IpAddr]> = allow.into_iter().map(ip::canonical).collect();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow }))
        .connect_timeout(connect_timeout)
        .user_agent(user_agent)
        .build()
        .expect("building a guarded HTTP client (TLS backend initialisation) failed")
}

/// Whether `url` (http or https) may be connected to: an IP-literal host must be an
/// allowed address, a host name that resolves must resolve to at least one. The error
/// says why not.
pub async fn check_destination(url: &Url, allow: &[IpAddr]) -> Result<(), String> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err("only http and https URLs are allowed".to_owned());
    }
    let host = match url.host() {
        None => return Err("the URL has no host".to_owned()),
        Some(Host::Ipv4(v4)) => return ip::check(IpAddr::V4(v4), allow).map_err(|why| format!("{v4} is {why}")),
        Some(Host::Ipv6(v6)) => return ip::check(IpAddr::V6(v6), allow).map_err(|why| format!("{v6} is {why}")),
        Some(Host::Domain(d)) => d.to_owned(),
    };
    // A name that does not resolve now breaks no policy: connecting to it will fail (and
    // the resolver checks its answers again then), so only addresses are judged here.
    let Ok((allowed, refused)) = resolve_checked(&host, allow).await else { return Ok(()) };
    if allowed.is_empty() {
        if refused.is_empty() {
            return Err(format!("host {host} has no addresses"));
        }
        let why = refused.iter().map(|(a, why)| format!("{a} is {why}")).collect::<Vec<_>>().join(", ");
        return Err(format!("host {host} resolves only to addresses that are not allowed ({why})"));
    }
    Ok(())
}

/// Turns a reqwest send error into a message, recognising the resolver's refusals.
fn send_error(field: &str, url: &Url, limits: &IntakeLimits, e: reqwest::Error) -> IntakeError {
    let field = field.to_owned();
    let mut source: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(refusal) = err.downcast_ref::<ResolveRefusal>() {
            let (host, detail) = (refusal.host.clone(), refusal.detail.clone());
            return match refusal.kind {
                RefusalKind::Forbidden => IntakeError::ForbiddenHost {
                    field,
                    host,
                    detail,
                },
                RefusalKind::Failed => IntakeError::Unresolvable {
                    field,
                    host,
                    detail,
                },
            };
        }
        source = err.source();
    }
    if e.is_timeout() {
        return IntakeError::Timeout {
            field,
            timeout: limits.fetch_timeout,
        };
    }
    let what = if e.is_connect() {
        "could not connect to"
    } else {
        "request failed for"
    };
    IntakeError::Fetch {
        field,
        detail: format!("{what} {}: {}", host_of(url), root_cause(&e)),
    }
}

fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => "the host".to_owned(),
    }
}

/// The innermost error's message (reqwest's own is "error sending request for url").
fn root_cause(e: &(dyn StdError + 'static)) -> String {
    let mut err = e;
    while let Some(next) = err.source() {
        err = next;
    }
    clip(&err.to_string(), 200)
}

/// The DNS resolver installed in the fetch client: drops disallowed answers and
/// refuses a name none of whose answers are allowed.
struct GuardedResolver {
    allow: Arc<[IpAddr]>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let (allowed, refused) = resolve_checked(&host, &allow).await?;
            if allowed.is_empty() {
                let detail = if refused.is_empty() {
                    return Err(ResolveRefusal::boxed(
                        RefusalKind::Failed,
                        &host,
                        "no addresses".to_owned(),
                    ));
                } else {
                    refused
                        .iter()
                        .map(|(a, why)| format!("{a} is {why}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(ResolveRefusal::boxed(RefusalKind::Forbidden, &host, detail));
            }
            if !refused.is_empty() {
                tracing::debug!(host, ?refused, "image fetch ignores disallowed DNS answers");
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Resolves `host` and splits the answers into allowed addresses and refused ones
/// (with the reason), each address once.
async fn resolve_checked(
    host: &str,
    allow: &[IpAddr],
) -> Result<(Vec<SocketAddr>, Vec<(IpAddr, &'static str)>), Box<dyn StdError + Send + Sync>> {
    let answers = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| ResolveRefusal::boxed(RefusalKind::Failed, host, e.to_string()))?;
    let (mut allowed, mut refused) = (Vec::new(), Vec::new());
    for addr in answers {
        match ip::check(addr.ip(), allow) {
            Ok(()) if !allowed.contains(&addr) => allowed.push(addr),
            Err(why) if !refused.iter().any(|(a, _)| *a == addr.ip()) => {
                refused.push((addr.ip(), why))
            }
            _ => {}
        }
    }
    Ok((allowed, refused))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefusalKind {
    Forbidden,
    Failed,
}

/// The resolver's error, found again in reqwest's error chain by `send_error`.
#[derive(Debug)]
struct ResolveRefusal {
    kind: RefusalKind,
    host: String,
    detail: String,
}

impl ResolveRefusal {
    fn boxed(kind: RefusalKind, host: &str, detail: String) -> Box<dyn StdError + Send + Sync> {
        Box::new(ResolveRefusal {
            kind,
            host: host.to_owned(),
            detail,
        })
    }
}

impl fmt::Display for ResolveRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RefusalKind::Forbidden => write!(
                f,
                "host {} resolves only to addresses that are not allowed ({})",
                self.host, self.detail
            ),
            RefusalKind::Failed => {
                write!(f, "could not resolve host {} ({})", self.host, self.detail)
            }
        }
    }
}

impl StdError for ResolveRefusal {}

#[cfg(test)]
pub(super) async fn resolve_for_test(
    host: &str,
    allow: &[IpAddr],
) -> Result<Vec<SocketAddr>, String> {
    let resolver = GuardedResolver {
        allow: allow.iter().copied().map(ip::canonical).collect(),
    };
    match resolver
        .resolve(host.parse().map_err(|_| "bad name".to_owned())?)
        .await
    {
        Ok(addrs) => Ok(addrs.collect()),
        Err(e) => Err(e.to_string()),
    }
}
