//! `/files/...`: blobs behind signed, expiring links, with byte ranges and the right
//! content type; download links add `Content-Disposition: attachment`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::{ApiError, ErrorBody};
use super::extract::PathParam;
use super::AppState;
use crate::blobs::signing::LinkFault;
use crate::blobs::{LinkKind, LocalBlobs};

pub fn routes(blobs: Arc<LocalBlobs>) -> Router<AppState> {
    Router::new().route(
        "/files/{*key}",
        get(move |path: PathParam, query: RawQuery, req: Request| serve(blobs.clone(), path, query, req)),
    )
}

/// The signature part of a link: `exp`, `sig` and `dl=1` for downloads.
#[derive(Default)]
struct Link {
    exp: Option<String>,
    sig: Option<String>,
    dl: Option<String>,
}

impl Link {
    fn parse(query: Option<&str>) -> Link {
        let mut link = Link::default();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*name {
                "exp" => link.exp = Some(value.into_owned()),
                "sig" => link.sig = Some(value.into_owned()),
                "dl" => link.dl = Some(value.into_owned()),
                _ => {}
            }
        }
        link
    }
}

/// A stored video or thumbnail behind a signed link from the API.
#[utoipa::path(get, path = "/files/{key}", operation_id = "file", tag = "files",
    params(
        ("key" = String, Path, description = "The blob's key, as in a link from the API"),
        ("exp" = Option<u64>, Query, description = "Expiry, Unix seconds"),
        ("sig" = Option<String>, Query, description = "The link's signature"),
        ("dl" = Option<String>, Query, description = "`1` for a download link"),
        ("Range" = Option<String>, Header, description = "A byte range"),
    ),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "A malformed path", body = ErrorBody),
        (status = 403, description = "The link is unsigned, forged or expired", body = ErrorBody),
        (status = 404, description = "No such file", body = ErrorBody),
        (status = 416, description = "The range is outside the file"),
    ))]
pub(super) async fn serve(blobs: Arc<LocalBlobs>, PathParam(key): PathParam, RawQuery(query): RawQuery, req: Request) -> Result<Response, ApiError> {
    let link = Link::parse(query.as_deref());
    let kind = if link.dl.as_deref() == Some("1") { LinkKind::Download } else { LinkKind::View };
    let (Some(exp), Some(sig)) = (link.exp, link.sig) else {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "this link is not signed"));
    };
    let Ok(exp) = exp.parse::<u64>() else {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "the link's expiry is not a number"));
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    match blobs.signer().verify(&key, kind, exp, &sig, now) {
        Ok(()) => {}
        Err(LinkFault::BadSignature) => return Err(ApiError::new(StatusCode::FORBIDDEN, "the link's signature is not valid")),
        Err(LinkFault::Expired) => return Err(ApiError::new(StatusCode::FORBIDDEN, "the link has expired; ask the API for a fresh one")),
    }
    let path = blobs.path_of(&key).ok_or_else(|| ApiError::not_found("no such file"))?;
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(ApiError::not_found("no such file"));
    }
    let mut response = ServeFile::new(&path).oneshot(req).await.map_err(ApiError::internal)?.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    if kind == LinkKind::Download {
        let name = key.rsplit('/').next().unwrap_or("video.mp4");
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}
