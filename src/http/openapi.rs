//! The OpenAPI 3.1 document, generated from the handlers' annotations and served at
//! `/openapi.json`. `docs/openapi.json` is a committed copy; a test fails when the
//! code and the copy differ (`lumagate openapi > docs/openapi.json` refreshes it).
//!
//! The reseller routes are written once (relative to their prefix) and stamped under
//! `/luma` and `/pro/luma`, with operation ids that keep the two apart.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathItem};
use utoipa::{Modify, OpenApi};

use super::AppState;

/// Every surface except the reseller routes, which [`document`] adds under each prefix.
#[derive(OpenApi)]
#[openapi(
    info(title = "lumagate", description = "A self-hosted gateway for AI video generation. The contract is API.md; this document is generated from the code."),
    paths(
        super::ops::healthz,
        super::ops::readyz,
        super::files::serve,
        openapi_json,
        super::metrics::scrape,
        super::admin::accounts,
        super::admin::enable,
        super::admin::disable,
        super::admin::queue,
        super::admin::keys,
        super::admin::create_key,
        super::admin::revoke_key,
        super::admin::failures,
        super::dream_machine::create,
        super::dream_machine::create_legacy,
        super::dream_machine::list,
        super::dream_machine::read,
        super::dream_machine::delete,
        super::dream_machine::concepts,
        super::dream_machine::ping,
        super::dream_machine::credits,
    ),
    components(schemas(super::error::ErrorBody, super::error::ErrorDetail)),
    modifiers(&BearerAuth),
)]
struct BaseApi;

/// The reseller routes, relative to `/luma` or `/pro/luma`.
#[derive(OpenApi)]
#[openapi(paths(
    super::luma::create,
    super::luma::list,
    super::luma::read,
    super::luma::extend,
    super::luma::download_video_url,
))]
struct LumaApi;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("an API key made by an operator")).build()),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("the admin token (LUMAGATE_ADMIN_TOKEN, or DATA_DIR/admin.token)"))
                    .build(),
            ),
        );
    }
}

/// The whole document.
pub fn document() -> Document {
    let mut doc = BaseApi::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    for (prefix, tag) in [("/luma", "luma"), ("/pro/luma", "pro_luma")] {
        let luma = LumaApi::openapi();
        for (path, mut item) in luma.paths.paths {
            for_each_operation(&mut item, |op| {
                op.operation_id = op.operation_id.take().map(|id| format!("{tag}_{id}"));
                op.tags = Some(vec![tag.to_string()]);
            });
            doc.paths.paths.insert(format!("{prefix}{path}"), item);
        }
        if let (Some(into), Some(from)) = (doc.components.as_mut(), luma.components) {
            into.schemas.extend(from.schemas);
        }
    }
    doc
}

fn for_each_operation(item: &mut PathItem, mut f: impl FnMut(&mut utoipa::openapi::path::Operation)) {
    for op in [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch].into_iter().flatten() {
        f(op);
    }
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut text = document().to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> Response {
    // Built once: the document cannot change while the process runs.
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(document_json).as_str();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

#[cfg(test)]
mod tests {
    const COMMITTED: &str = "docs/openapi.json";

    /// The committed document is what the code generates. To refresh it:
    /// `LUMAGATE_UPDATE_OPENAPI=1 cargo test --lib openapi` or `lumagate openapi > docs/openapi.json`.
    #[test]
    fn committed_document_matches_the_code() {
        let generated = super::document_json();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
        if std::env::var_os("LUMAGATE_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("writing docs/openapi.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{COMMITTED} differs from the document the code generates; refresh it with \
             `LUMAGATE_UPDATE_OPENAPI=1 cargo test --lib openapi` and commit it"
        );
    }

    #[test]
    fn every_public_surface_is_documented() {
        let doc = super::document();
        let paths: Vec<&String> = doc.paths.paths.keys().collect();
        for expected in [
            "/luma/generations",
            "/luma/generations/{id}",
            "/luma/generations/{id}/extend",
            "/luma/generations/{id}/download_video_url",
            "/pro/luma/generations",
            "/pro/luma/generations/{id}",
            "/files/{key}",
            "/healthz",
            "/readyz",
            "/openapi.json",
            "/metrics",
            "/admin/accounts",
            "/admin/accounts/{id}/disable",
            "/admin/queue",
            "/admin/keys",
            "/admin/keys/{id}",
            "/admin/failures",
            "/dream-machine/v1/generations",
            "/dream-machine/v1/generations/video",
            "/dream-machine/v1/generations/{id}",
            "/dream-machine/v1/generations/concepts/list",
            "/dream-machine/v1/ping",
            "/dream-machine/v1/credits",
        ] {
            assert!(paths.iter().any(|p| *p == expected), "{expected} is missing from {paths:?}");
        }
        let json = super::document_json();
        assert!(json.contains("\"openapi\": \"3.1.0\""), "not OpenAPI 3.1");
        let ids: Vec<_> = doc.paths.paths.values().flat_map(|i| [&i.get, &i.post, &i.delete]).flatten().map(|o| o.operation_id.clone()).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "operation ids must be unique: {ids:?}");
    }
}
