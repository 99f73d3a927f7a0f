//! `/files/...`: blobs behind signed, expiring links, with byte ranges and the right
//! content type; download links add `Content-Disposition: attachment`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::ApiError;
use super::AppState;
use crate::blobs::signing::LinkFault;
use crate::blobs::{LinkKind, LocalBlobs};

pub fn routes(blobs: Arc<LocalBlobs>) -> Router<AppState> {
    Router::new().route(
        "/files/{*key}",
        get(move |path: Path<String>, query: Query<Link>, req: Request| serve(blobs.clone(), path, query, req)),
    )
}

#[derive(Deserialize)]
struct Link {
    exp: Option<u64>,
    sig: Option<String>,
    dl: Option<String>,
}

async fn serve(blobs: Arc<LocalBlobs>, Path(key): Path<String>, Query(link): Query<Link>, req: Request) -> Result<Response, ApiError> {
    let kind = if link.dl.as_deref() == Some("1") { LinkKind::Download } else { LinkKind::View };
    let (Some(exp), Some(sig)) = (link.exp, link.sig) else {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "this link is not signed"));
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
