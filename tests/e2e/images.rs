//! API.md §3.1 and §5: image inputs, their refusals, and the size limits.
//!
//! Image servers listen on 127.0.0.2, which the server under test may reach only
//! because of `LUMAGATE_ALLOW_FETCH_IPS=127.0.0.2`; 127.0.0.1 stays refused.

use serde_json::{json, Value};

use crate::fixtures::{base64, data_uri, jpeg, noisy_png, picture, png, png_declaring, serve_files};
use crate::harness::{assert_error, id_of, App, Go};

const ALLOWED_IP: &str = "127.0.0.2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_as_a_data_uri_bare_base64_or_a_url_are_accepted_and_rendered() {
    let images = serve_files(ALLOWED_IP, vec![("/pic.png", "image/png", png(64, 36))], vec![]).await;
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "400"), ("LUMAGATE_ALLOW_FETCH_IPS", ALLOWED_IP)]).await;

    let gif = data_uri("image/gif", &picture(36, 64, image::ImageFormat::Gif));
    let webp = data_uri("image/webp", &picture(64, 36, image::ImageFormat::WebP));
    let tasks: Vec<(Value, (u64, u64))> = vec![
        // An image alone needs no prompt.
        (json!({"image_url": data_uri("image/png", &png(64, 36))}), (1280, 720)),
        (json!({"user_prompt": "from a JPEG", "image_url": base64(&jpeg(36, 64)), "image_end_url": gif, "aspect_ratio": "9:16"}), (720, 1280)),
        (json!({"user_prompt": "from a URL", "image_url": images.url("/pic.png"), "image_end_url": webp}), (1280, 720)),
    ];
    let mut ids = Vec::new();
    for (body, _) in &tasks {
        let r = app.post("/luma/generations", body).go().await;
        assert_eq!(r.status, 200, "an image input should be accepted: {}", r.text());
        ids.push(id_of(&r.json()));
    }
    assert_eq!(images.hits(), 1, "the URL image is fetched once, at submission");
    for (id, (_, (w, h))) in ids.iter().zip(&tasks) {
        let done = app.wait_completed(id).await;
        assert_eq!((done["video"]["width"].as_u64(), done["video"]["height"].as_u64()), (Some(*w), Some(*h)), "{done:#}");
    }
    assert_eq!(app.task(&ids[0]).await["prompt"], "", "an image-only task has an empty prompt");
    assert_eq!(images.hits(), 1, "rendering uses the stored copy, not the caller's URL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_refusals_answer_400_saying_why() {
    let forbidden = serve_files("127.0.0.1", vec![("/x.png", "image/png", png(64, 36))], vec![]).await;
    let p1 = forbidden.addr.port();
    let mut whole = png(64, 36);
    whole.truncate(whole.len() / 2);
    let truncated = whole;
    let allowed = serve_files(
        ALLOWED_IP,
        vec![
            ("/x.png", "image/png", png(64, 36)),
            ("/notes.txt", "text/plain", b"just some words, not a picture\n".to_vec()),
            ("/drawing.svg", "image/svg+xml", SVG.as_bytes().to_vec()),
            ("/lying.png", "image/png", b"<html><body>not found</body></html>".to_vec()),
        ],
        vec![("/to-loopback", format!("http://127.0.0.1:{p1}/x.png")), ("/to-metadata", "http://169.254.169.254/latest".into())],
    )
    .await;
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "600000"), ("LUMAGATE_ALLOW_FETCH_IPS", ALLOWED_IP)]).await;

    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("http://127.0.0.1:{p1}/x.png"), vec!["127.0.0.1", "loopback"]),
        (format!("http://localhost:{p1}/x.png"), vec!["localhost", "not allowed"]),
        (format!("http://[::1]:{p1}/x.png"), vec!["loopback"]),
        (format!("http://[::ffff:127.0.0.1]:{p1}/x.png"), vec!["not allowed"]),
        (format!("http://2130706433:{p1}/x.png"), vec!["127.0.0.1", "loopback"]),
        (allowed.url("/to-loopback"), vec!["127.0.0.1", "loopback"]),
        (allowed.url("/to-metadata"), vec!["169.254.169.254"]),
        ("http://169.254.169.254/latest".into(), vec!["169.254.169.254", "not allowed"]),
        ("http://10.1.2.3/x.png".into(), vec!["10.1.2.3", "private"]),
        ("ftp://x/y.png".into(), vec!["ftp", "http"]),
        ("file:///etc/passwd".into(), vec!["file"]),
        (allowed.url("/notes.txt"), vec!["png", "jpeg", "text"]),
        (allowed.url("/drawing.svg"), vec!["svg"]),
        (allowed.url("/lying.png"), vec!["html"]),
        (allowed.url("/missing.png"), vec!["404"]),
        (data_uri("image/svg+xml", SVG.as_bytes()), vec!["svg"]),
        (data_uri("text/plain", b"hello, this is text"), vec!["png", "jpeg", "text"]),
        ("data:image/png;base64,".into(), vec!["empty"]),
        ("data:image/png;base64,!!!!".into(), vec!["base64"]),
        (data_uri("image/png", &png_declaring(100_000, 100_000)), vec!["100000", "pixels"]),
        (data_uri("image/png", &truncated), vec!["corrupt"]),
        ("just some words".into(), vec!["url", "base64"]),
    ];
    for (input, needles) in &cases {
        let r = app.post("/luma/generations", &json!({"user_prompt": "x", "image_url": input})).go().await;
        assert_eq!(r.status, 400, "image_url {:.80} should answer 400, got {}: {}", input, r.status, r.text());
        let mut with_field = needles.clone();
        with_field.push("image_url");
        assert_error(&r, 400, &with_field);
    }
    // The end keyframe is checked the same way and named in the message.
    for input in [format!("http://127.0.0.1:{p1}/x.png"), "data:image/png;base64,".into()] {
        let r = app.post("/pro/luma/generations", &json!({"user_prompt": "x", "image_end_url": input})).go().await;
        assert_error(&r, 400, &["image_end_url"]);
    }
    assert_eq!(forbidden.hits(), 0, "nothing may ever reach the loopback server");
    let listed = app.get("/luma/generations").go().await.json();
    assert_eq!(listed, json!([]), "refused images must not create tasks");
    // The allowed server still works, so the refusals above were about the inputs.
    let ok = app.post("/luma/generations", &json!({"user_prompt": "x", "image_url": allowed.url("/x.png")})).go().await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_images_and_bodies_answer_413_naming_the_limit() {
    let big = noisy_png(128, 128);
    assert!(big.len() > 40_000, "the noisy PNG should not compress: {} bytes", big.len());
    let images = serve_files(ALLOWED_IP, vec![("/big.png", "image/png", big.clone())], vec![]).await;
    let app = App::start(&[
        ("LUMAGATE_SANDBOX_DELAY_MS", "600000"),
        ("LUMAGATE_ALLOW_FETCH_IPS", ALLOWED_IP),
        ("LUMAGATE_MAX_IMAGE_BYTES", "20000"),
        ("LUMAGATE_BODY_LIMIT_BYTES", "200000"),
    ])
    .await;
    for (how, input) in [
        ("data URI", data_uri("image/png", &big)),
        ("bare base64", base64(&big)),
        ("URL", images.url("/big.png")),
    ] {
        let r = app.post("/luma/generations", &json!({"user_prompt": "x", "image_url": input})).go().await;
        assert_eq!(r.status, 413, "an image over the limit as a {how} should answer 413, got {}: {}", r.status, r.text());
        assert_error(&r, 413, &["image_url", "20000"]);
    }
    let r = app.post("/luma/generations", &json!({"user_prompt": "x", "image_end_url": data_uri("image/png", &big)})).go().await;
    assert_error(&r, 413, &["image_end_url", "20000"]);
    // A small image is fine under the same limits.
    let small = png(64, 36);
    assert!(small.len() < 20_000);
    let r = app.post("/luma/generations", &json!({"user_prompt": "x", "image_url": data_uri("image/png", &small)})).go().await;
    assert_eq!(r.status, 200, "{}", r.text());

    let padding = "p".repeat(250_000);
    let r = app.post("/luma/generations", &json!({"user_prompt": "x", "padding": padding})).go().await;
    assert_error(&r, 413, &["200000"]);
    let r = app.post("/pro/luma/generations", &json!({"user_prompt": "x", "padding": padding})).go().await;
    assert_error(&r, 413, &["200000"]);
    let listed = app.get("/luma/generations").go().await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "only the small image made a task: {listed:#}");
}

const SVG: &str = r#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="36"><rect width="64" height="36" fill="red"/></svg>"#;
