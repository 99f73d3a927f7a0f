//! The Agents adapter: request mapping, refusals, and reading its generation object.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::*;
use crate::blobs::signing::LinkSigner;
use crate::blobs::LocalBlobs;
use crate::tasks::model::{Params, Resolution, Tier};

fn provider(public_url: Option<&str>) -> LumaAgents {
    let blobs = Arc::new(LocalBlobs::new(std::env::temp_dir().join("lumagate-unit-blobs"), LinkSigner::new(b"k".to_vec())));
    let links = KeyframeLinks { blobs, public_url: public_url.map(str::to_string), ttl: Duration::from_secs(3600) };
    LumaAgents::new(UpstreamHttp::new(Duration::from_millis(500)), links)
}

fn job() -> Job {
    Job {
        task_id: uuid::Uuid::new_v4(),
        tier: Tier::Relax,
        prompt: String::new(),
        params: Params {
            model: Model::RayV3,
            aspect_ratio: AspectRatio::Square,
            resolution: Resolution::P720,
            duration: ClipDuration::Five,
            looped: true,
            expand_prompt: false,
            start_image: Some("keyframes/x-start.png".into()),
            end_image: None,
            notify_hook: None,
            surface: Default::default(),
            request_echo: None,
        },
        start_image: Some(bytes::Bytes::from(png())),
        end_image: None,
        parent: None,
        parent_upstream_id: None,
    }
}

fn png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(4, 4).write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn keyframes_go_as_links_with_a_public_url_else_inline() {
    let inline = serde_json::to_value(provider(None).body(&job(), "a1").unwrap()).unwrap();
    assert_eq!((inline["model"].as_str(), inline["type"].as_str()), (Some("ray-3.2"), Some("video")));
    assert_eq!(inline["video"]["start_frame"]["media_type"], "image/png");
    assert_eq!(inline["video"]["loop"], true);
    assert_eq!(inline["prompt"], "animate the image");
    assert_eq!(inline["user_id"], "a1");
    let linked = serde_json::to_value(provider(Some("https://gate.example")).body(&job(), "a1").unwrap()).unwrap();
    assert!(linked["video"]["start_frame"]["url"].as_str().unwrap().starts_with("https://gate.example/files/keyframes/x-start.png?"));

    let mut extend = job();
    extend.params.start_image = None;
    extend.params.looped = false;
    extend.parent = Some(Box::new(job()));
    extend.parent_upstream_id = Some("p-1".into());
    let v = serde_json::to_value(provider(None).body(&extend, "a2").unwrap()).unwrap();
    assert_eq!(v["video"]["start_frame"], json!({"generation_id": "p-1"}));
}

#[test]
fn what_ray_3_lacks_is_refused_with_the_reason() {
    let p = provider(None);
    let base = Ask { model: Model::RayV3, aspect_ratio: AspectRatio::Wide, duration: ClipDuration::Five, looped: false, start_image: false, end_image: false, extend: false };
    assert!(p.check(&base).is_ok());
    assert!(p.check(&Ask { duration: ClipDuration::Ten, ..base }).is_ok());
    assert!(p.check(&Ask { model: Model::RayV2, ..base }).unwrap_err().contains("luma-api"));
    assert!(p.check(&Ask { aspect_ratio: AspectRatio::CinemaTall, ..base }).unwrap_err().contains("9:21"));
    assert!(p.check(&Ask { duration: ClipDuration::Ten, start_image: true, ..base }).unwrap_err().contains("10s"));
    assert!(p.check(&Ask { extend: true, end_image: true, ..base }).is_err());
}

#[tokio::test]
async fn poll_reads_output_failure_codes_and_classifies_bad_answers() {
    async fn answering(status: u16, body: &'static str) -> Account {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/v1/generations/{id}",
            get(move || async move { (StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], body) }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut account = Account::new("a", PROVIDER, 1);
        account.credentials = json!({"api_key": "luma-api-x", "base_url": format!("http://{addr}/v1")});
        account
    }
    let p = provider(None);
    let j = job();
    let done = answering(200, r#"{"id":"g","state":"completed","output":[{"type":"video","url":"https://s3/v.mp4"}]}"#).await;
    assert!(matches!(p.poll(&done, &j, "g").await.unwrap(), UpstreamStatus::Finished(VideoSource::Url { video, thumbnail: None }) if video == "https://s3/v.mp4"));
    let failed = answering(200, r#"{"id":"g","state":"failed","output":[],"failure_reason":"flagged","failure_code":"content_moderated"}"#).await;
    assert!(matches!(p.poll(&failed, &j, "g").await.unwrap(), UpstreamStatus::Failed { reason } if reason == "flagged (content_moderated)"));
    let queued = answering(200, r#"{"id":"g","state":"queued","output":null}"#).await;
    assert!(matches!(p.poll(&queued, &j, "g").await.unwrap(), UpstreamStatus::Running { .. }));
    let malformed = answering(200, "<html>").await;
    assert!(matches!(p.poll(&malformed, &j, "g").await, Err(ProviderError::Transient(_))));
    let empty_output = answering(200, r#"{"id":"g","state":"completed","output":[]}"#).await;
    assert!(matches!(p.poll(&empty_output, &j, "g").await, Err(ProviderError::Transient(_))));
    let limited = answering(429, r#"{"detail":"Too many concurrent jobs"}"#).await;
    assert!(matches!(p.poll(&limited, &j, "g").await, Err(ProviderError::RateLimited { .. })));
    let forbidden = answering(403, r#"{"detail":"API client is suspended"}"#).await;
    assert!(matches!(p.poll(&forbidden, &j, "g").await, Err(ProviderError::AccountAuth(r)) if r.contains("suspended")));
}
