//! The Dream Machine adapter against tiny in-process servers: request mapping, every
//! answer's classification, and recovering a submission lost to a crash.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::*;
use crate::blobs::signing::LinkSigner;
use crate::blobs::LocalBlobs;
use crate::tasks::model::{AspectRatio, Params, Resolution, Tier};

fn provider(public_url: Option<&str>) -> LumaApi {
    let blobs = Arc::new(LocalBlobs::new(std::env::temp_dir().join("lumagate-unit-blobs"), LinkSigner::new(b"k".to_vec())));
    let links = KeyframeLinks { blobs, public_url: public_url.map(str::to_string), ttl: Duration::from_secs(3600) };
    LumaApi::new(UpstreamHttp::new(Duration::from_millis(500)), links)
}

fn job(model: Model, duration: ClipDuration) -> Job {
    Job {
        task_id: uuid::Uuid::new_v4(),
        tier: Tier::Pro,
        prompt: "a lighthouse".into(),
        params: Params {
            model,
            aspect_ratio: AspectRatio::Wide,
            resolution: Resolution::P1080,
            duration,
            looped: false,
            expand_prompt: false,
            start_image: None,
            end_image: None,
            notify_hook: None,
            surface: Default::default(),
            request_echo: None,
        },
        start_image: None,
        end_image: None,
        parent: None,
        parent_upstream_id: None,
    }
}

async fn serve(app: Router) -> Account {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut account = Account::new("dm", PROVIDER, 1);
    account.credentials = json!({"api_key": "luma-test", "base_url": format!("http://{addr}/dream-machine/v1")});
    account
}

/// A server whose `GET /generations/{id}` always answers `status` with `body`.
async fn answering(status: u16, body: &'static str) -> Account {
    let app = Router::new().route(
        "/dream-machine/v1/generations/{id}",
        get(move || async move { (StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], body) }),
    );
    serve(app).await
}

#[test]
fn bodies_map_models_durations_keyframes_and_extend() {
    let p = provider(Some("https://gate.example"));
    let b = p.body(&job(Model::RayV2, ClipDuration::Ten)).unwrap();
    assert_eq!((b.model.as_str(), b.duration.as_deref(), b.resolution.as_deref()), ("ray-2", Some("9s"), Some("1080p")));
    let b = p.body(&job(Model::RayV1, ClipDuration::Five)).unwrap();
    assert_eq!((b.model.as_str(), b.duration.as_deref(), b.resolution.as_deref()), ("ray-1-6", None, None));

    let mut images = job(Model::RayV2, ClipDuration::Five);
    images.params.start_image = Some("keyframes/a-start.png".into());
    images.params.end_image = Some("keyframes/a-end.jpg".into());
    let v = serde_json::to_value(p.body(&images).unwrap()).unwrap();
    let url = v["keyframes"]["frame0"]["url"].as_str().unwrap();
    assert!(url.starts_with("https://gate.example/files/keyframes/a-start.png?exp=") && url.contains("sig="), "{url}");
    assert_eq!(v["keyframes"]["frame1"]["type"], "image");

    let mut extend = job(Model::RayV2, ClipDuration::Five);
    extend.parent = Some(Box::new(job(Model::RayV2, ClipDuration::Five)));
    extend.parent_upstream_id = Some("gen-1".into());
    let v = serde_json::to_value(p.body(&extend).unwrap()).unwrap();
    assert_eq!(v["keyframes"]["frame0"], json!({"type": "generation", "id": "gen-1"}));
}

#[test]
fn keyframes_without_a_public_url_and_unservable_asks_are_refused_clearly() {
    let mut images = job(Model::RayV2, ClipDuration::Five);
    images.params.start_image = Some("keyframes/a-start.png".into());
    assert!(matches!(provider(None).body(&images), Err(ProviderError::Rejected(r)) if r.contains("LUMAGATE_PUBLIC_URL")));
    let p = provider(None);
    let ask = |model, duration, looped, end_image| Ask { model, aspect_ratio: AspectRatio::Wide, duration, looped, start_image: false, end_image, extend: false };
    assert!(p.check(&ask(Model::RayV3, ClipDuration::Five, false, false)).unwrap_err().contains("luma-agents"));
    assert!(p.check(&ask(Model::RayV1, ClipDuration::Ten, false, false)).unwrap_err().contains("5 s"));
    assert!(p.check(&ask(Model::RayV2, ClipDuration::Five, true, true)).unwrap_err().contains("loop"));
    assert!(p.check(&ask(Model::RayV2, ClipDuration::Ten, true, false)).is_ok());
}

#[tokio::test]
async fn poll_reads_states_and_classifies_every_bad_answer() {
    let p = provider(None);
    let j = job(Model::RayV2, ClipDuration::Five);
    let done = answering(200, r#"{"id":"g","state":"completed","assets":{"video":"https://cdn/v.mp4","image":"https://cdn/t.jpg"}}"#).await;
    match p.poll(&done, &j, "g").await.unwrap() {
        UpstreamStatus::Finished(VideoSource::Url { video, thumbnail }) => {
            assert_eq!((video.as_str(), thumbnail.as_deref()), ("https://cdn/v.mp4", Some("https://cdn/t.jpg")))
        }
        other => panic!("{other:?}"),
    }
    let failed = answering(200, r#"{"id":"g","state":"failed","failure_reason":"Frame moderation failed"}"#).await;
    assert!(matches!(p.poll(&failed, &j, "g").await.unwrap(), UpstreamStatus::Failed { reason } if reason == "Frame moderation failed"));
    let dreaming = answering(200, r#"{"id":"g","state":"dreaming","created_at":"2020-01-01T00:00:00Z"}"#).await;
    assert!(matches!(p.poll(&dreaming, &j, "g").await.unwrap(), UpstreamStatus::Running { progress } if progress > 5));

    let malformed = answering(200, r#"{"id": "g", "state": "#).await;
    assert!(matches!(p.poll(&malformed, &j, "g").await, Err(ProviderError::Transient(_))));
    let no_video = answering(200, r#"{"id":"g","state":"completed","assets":null}"#).await;
    assert!(matches!(p.poll(&no_video, &j, "g").await, Err(ProviderError::Transient(_))));
    let wrong_shape = answering(200, r#"[1, 2, 3]"#).await;
    assert!(matches!(p.poll(&wrong_shape, &j, "g").await, Err(ProviderError::Transient(_))));
    let unauthorized = answering(401, r#"{"detail":"Invalid API key"}"#).await;
    assert!(matches!(p.poll(&unauthorized, &j, "g").await, Err(ProviderError::AccountAuth(r)) if r.contains("Invalid API key")));
    let gone = answering(404, r#"{"detail":"Generation not found"}"#).await;
    assert!(matches!(p.poll(&gone, &j, "g").await, Err(ProviderError::Rejected(r)) if r.contains("Generation not found")));
    let down = answering(502, r#"{"detail":"Upstream service unavailable"}"#).await;
    assert!(matches!(p.poll(&down, &j, "g").await, Err(ProviderError::Transient(_))));

    // A server that never answers in time.
    let slow = serve(Router::new().route(
        "/dream-machine/v1/generations/{id}",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "{}"
        }),
    ))
    .await;
    assert!(matches!(p.poll(&slow, &j, "g").await, Err(ProviderError::Transient(r)) if r.contains("in time")));
}

#[tokio::test]
async fn recover_finds_the_generation_a_lost_submission_made_and_nothing_else() {
    let p = provider(None);
    let j = job(Model::RayV2, ClipDuration::Five);
    let now = time::OffsetDateTime::now_utc();
    let stamp = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let ours = serde_json::to_value(p.body(&j).unwrap()).unwrap();
    let mut other_prompt = ours.clone();
    other_prompt["prompt"] = json!("someone else's");
    let list: Value = json!({"generations": [
        {"id": "other", "state": "dreaming", "created_at": stamp(now), "request": other_prompt},
        {"id": "mine", "state": "dreaming", "created_at": stamp(now), "request": ours},
        {"id": "old", "state": "completed", "created_at": stamp(now - time::Duration::hours(2)), "request": ours},
    ], "count": 3, "has_more": false});
    let account = serve(Router::new().route("/dream-machine/v1/generations", get(move || async move { Json(list.clone()) }))).await;
    let attempt = format!("{}-abc", now.unix_timestamp() * 1000 - 5_000);
    assert_eq!(p.recover(&account, &j, &attempt).await.as_deref(), Some("mine"));

    let mut unseen = j.clone();
    unseen.prompt = "never submitted".into();
    assert_eq!(p.recover(&account, &unseen, &attempt).await, None);
    // A marker without a time (an older attempt) cannot be matched safely.
    assert_eq!(p.recover(&account, &j, "d0c5e").await, None);
}
