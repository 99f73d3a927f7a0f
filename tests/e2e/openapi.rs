//! API.md §1: the OpenAPI document is served at `/openapi.json`, and it is the
//! committed `docs/openapi.json`.

use crate::harness::{App, Go};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_committed_one() {
    let app = App::start(&[]).await;
    let r = app.anon(reqwest::Method::GET, "/openapi.json").go().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json")).unwrap();
    assert_eq!(r.text(), committed, "GET /openapi.json must serve docs/openapi.json");
    assert_eq!(r.json()["openapi"], "3.1.0");
}
