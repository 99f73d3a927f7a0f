//! Image intake: turns a request's `image_url` / `image_end_url` value (an http(s) URL,
//! a `data:image/...;base64,` URI or bare base64) into a validated [`Keyframe`].
//!
//! Contract: API.md §3.1 and §5. The image is fetched or decoded once, recognised by
//! its content (PNG, JPEG, WebP or GIF only), its declared dimensions are checked
//! before anything is decoded (decompression bombs never allocate), and it is then
//! decoded fully once, under allocation limits, so truncated or corrupt files are
//! refused. Fetching is SSRF-safe, see [`Fetcher`].
//!
//! Every refusal is an [`IntakeError`] whose `Display` is a user-facing message that
//! starts with the field name; [`IntakeError::is_too_large`] tells the caller to
//! answer `413` rather than `400`.

mod decode;
mod fetch;
mod input;
mod ip;

#[cfg(test)]
mod tests_decode;
#[cfg(test)]
mod tests_fetch;
#[cfg(test)]
mod tests_hostile;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;

pub use fetch::{check_destination, guarded_client, Fetcher};
pub use ip::blocked_reason;

/// Limits applied to every image input.
#[derive(Debug, Clone)]
pub struct IntakeLimits {
    /// Largest accepted image, in bytes (after base64 decoding). Default 10 MiB.
    pub max_bytes: usize,
    /// Largest accepted width × height. Default 40 000 000.
    pub max_pixels: u64,
    /// Largest accepted width and largest accepted height. Default 8192.
    pub max_side: u32,
    /// Time allowed for a whole fetch: connecting, every redirect, the body. Default 15 s.
    pub fetch_timeout: Duration,
    /// Redirects followed before giving up. Default 5.
    pub max_redirects: usize,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        IntakeLimits {
            max_bytes: 10 * 1024 * 1024,
            max_pixels: 40_000_000,
            max_side: 8192,
            fetch_timeout: Duration::from_secs(15),
            max_redirects: 5,
        }
    }
}

/// The image formats lumagate accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKind {
    Png,
    Jpeg,
    Webp,
    Gif,
}

impl ImageKind {
    /// The MIME type, e.g. `image/png`.
    pub fn content_type(&self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Webp => "image/webp",
            ImageKind::Gif => "image/gif",
        }
    }

    /// The usual file extension, without the dot, e.g. `png`, `jpg`.
    pub fn extension(&self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpg",
            ImageKind::Webp => "webp",
            ImageKind::Gif => "gif",
        }
    }

    /// The format's name for messages: `PNG`, `JPEG`, `WebP`, `GIF`.
    pub fn name(&self) -> &'static str {
        match self {
            ImageKind::Png => "PNG",
            ImageKind::Jpeg => "JPEG",
            ImageKind::Webp => "WebP",
            ImageKind::Gif => "GIF",
        }
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated input image: the original bytes, unchanged, and what they are.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyframe {
    pub bytes: Bytes,
    pub format: ImageKind,
    pub width: u32,
    pub height: u32,
}

impl fmt::Debug for Keyframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyframe")
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// Why an image input was refused. `Display` is the user-facing message; it always
/// starts with the request field's name (`image_url: ...`).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{field}: no image given")]
    Empty { field: String },
    #[error("{field}: expected an http(s) URL, a data:image/...;base64, URI or base64 image data ({reason})")]
    Unrecognized { field: String, reason: String },
    #[error("{field}: URL scheme \"{scheme}\" is not allowed, only http and https")]
    UnsupportedScheme { field: String, scheme: String },
    #[error("{field}: invalid URL ({reason})")]
    InvalidUrl { field: String, reason: String },
    #[error("{field}: invalid data URI ({reason})")]
    InvalidDataUri { field: String, reason: String },
    #[error("{field}: invalid base64 image data ({reason})")]
    InvalidBase64 { field: String, reason: String },
    #[error("{field}: image is {size} bytes, the limit is {limit} bytes")]
    TooLarge {
        field: String,
        size: u64,
        limit: usize,
    },
    #[error("{field}: image is larger than the limit of {limit} bytes")]
    TooLargeStreamed { field: String, limit: usize },
    #[error("{field}: image is empty (0 bytes)")]
    EmptyImage { field: String },
    #[error("{field}: not a PNG, JPEG, WebP or GIF image{}", looks_like(.detected))]
    UnsupportedFormat {
        field: String,
        detected: Option<String>,
    },
    #[error("{field}: image declares {width}×{height} pixels, the limit is {limit} pixels")]
    TooManyPixels {
        field: String,
        width: u32,
        height: u32,
        limit: u64,
    },
    #[error(
        "{field}: image declares {width}×{height} pixels, each side may be at most {limit} pixels"
    )]
    SideTooLong {
        field: String,
        width: u32,
        height: u32,
        limit: u32,
    },
    #[error("{field}: image declares {width}×{height} pixels, it has no area")]
    ZeroArea {
        field: String,
        width: u32,
        height: u32,
    },
    #[error("{field}: the {kind} image is truncated or corrupt ({detail})")]
    Corrupt {
        field: String,
        kind: ImageKind,
        detail: String,
    },
    #[error("{field}: the {kind} image needs more memory to decode than allowed ({detail})")]
    DecodeLimit {
        field: String,
        kind: ImageKind,
        detail: String,
    },
    #[error("{field}: address {addr} is not allowed ({reason})")]
    ForbiddenAddress {
        field: String,
        addr: IpAddr,
        reason: &'static str,
    },
    #[error("{field}: host {host} resolves only to addresses that are not allowed ({detail})")]
    ForbiddenHost {
        field: String,
        host: String,
        detail: String,
    },
    #[error("{field}: could not resolve host {host} ({detail})")]
    Unresolvable {
        field: String,
        host: String,
        detail: String,
    },
    #[error("{field}: fetch timed out after {} s", .timeout.as_secs_f64())]
    Timeout { field: String, timeout: Duration },
    #[error("{field}: upstream answered {status}")]
    UpstreamStatus { field: String, status: u16 },
    #[error("{field}: too many redirects (more than {max})")]
    TooManyRedirects { field: String, max: usize },
    #[error("{field}: bad redirect ({reason})")]
    BadRedirect { field: String, reason: String },
    #[error("{field}: could not fetch the image ({detail})")]
    Fetch { field: String, detail: String },
}

fn looks_like(detected: &Option<String>) -> String {
    match detected {
        Some(what) => format!(" (it looks like {what})"),
        None => String::new(),
    }
}

impl IntakeError {
    /// `true` when the image was refused for its size in bytes: the caller answers
    /// `413`. Every other refusal answers `400` (dimension limits included: they
    /// are about the picture, not the payload).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            IntakeError::TooLarge { .. } | IntakeError::TooLargeStreamed { .. }
        )
    }

    /// The request field the error is about (`image_url`, `image_end_url`, ...).
    pub fn field(&self) -> &str {
        use IntakeError::*;
        match self {
            Empty { field }
            | Unrecognized { field, .. }
            | UnsupportedScheme { field, .. }
            | InvalidUrl { field, .. }
            | InvalidDataUri { field, .. }
            | InvalidBase64 { field, .. }
            | TooLarge { field, .. }
            | TooLargeStreamed { field, .. }
            | EmptyImage { field }
            | UnsupportedFormat { field, .. }
            | TooManyPixels { field, .. }
            | SideTooLong { field, .. }
            | ZeroArea { field, .. }
            | Corrupt { field, .. }
            | DecodeLimit { field, .. }
            | ForbiddenAddress { field, .. }
            | ForbiddenHost { field, .. }
            | Unresolvable { field, .. }
            | Timeout { field, .. }
            | UpstreamStatus { field, .. }
            | TooManyRedirects { field, .. }
            | BadRedirect { field, .. }
            | Fetch { field, .. } => field,
        }
    }
}

/// Fetches or decodes one image input and validates it.
///
/// `field` is the request field name used in messages ("image_url" / "image_end_url").
/// `input` is trimmed first; an empty input is an error (callers treat `""` as "not
/// given" before calling). URLs are fetched with `fetcher` under `limits`
/// (`fetch_timeout`, `max_redirects`, `max_bytes` are taken from `limits`, not from
/// the limits the fetcher was built with).
/// Image decodes that may run at once, process-wide. A full decode holds up to
/// `max_pixels × 4` bytes, so this bounds the memory concurrent image creates can take;
/// decoding is CPU-bound, so more at once would not finish sooner.
pub const MAX_CONCURRENT_DECODES: usize = 2;
static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_DECODES);

async fn decode_turn() -> tokio::sync::SemaphorePermit<'static> {
    DECODES.acquire().await.expect("the decode semaphore is never closed")
}

pub async fn intake(
    field: &str,
    input: &str,
    limits: &IntakeLimits,
    fetcher: &Fetcher,
) -> Result<Keyframe, IntakeError> {
    match input::parse_input(field, input)? {
        input::Input::Url(url) => {
            // Fetches run freely (a slow host must not hold up others); decodes take turns.
            let bytes = fetcher.fetch(field, url, limits).await?;
            let _turn = decode_turn().await;
            decode::validate(field, bytes, limits).await
        }
        input::Input::Base64 { text, bare } => {
            // The turn is taken before the base64 is decoded, so waiting requests hold
            // only their request text, not a decoded copy too. Text plainly over the limit
            // is refused from its length without waiting for a turn.
            let plainly_too_large = text.len() / 4 * 3 > limits.max_bytes.saturating_add(3);
            let _turn = if plainly_too_large { None } else { Some(decode_turn().await) };
            let checked = match input::decode_base64(field, text, limits.max_bytes) {
                Ok(bytes) => decode::validate(field, bytes, limits).await,
                Err(e) => Err(e),
            };
            checked.map_err(|e| if bare { input::as_unrecognized(e) } else { e })
        }
    }
}
