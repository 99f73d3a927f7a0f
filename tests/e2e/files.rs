//! API.md §3.3 / §3.5: signed, expiring links to videos and thumbnails, and `download_video_url`.

use std::time::Duration;

use serde_json::Value;

use crate::fixtures::{mp4_duration_secs, now_secs, query_param, with_param};
use crate::harness::{assert_error, id_of, prompt, App, Go, Resp};

fn link<'a>(task: &'a Value, which: &str) -> &'a str {
    task["video"][which].as_str().unwrap_or_else(|| panic!("video.{which} in {task:#}"))
}

#[track_caller]
fn assert_is_mp4(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type").as_deref(), Some("video/mp4"));
    assert!(r.body.len() > 1000, "a video has some bytes, got {}", r.body.len());
    assert_eq!(&r.body[4..8], b"ftyp", "an MP4 starts with an ftyp box");
    assert_eq!(r.header("content-length").map(|l| l.parse::<usize>().unwrap()), Some(r.body.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_links_serve_the_files_with_the_right_headers_and_refuse_tampering() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "1000")]).await;
    let id = id_of(&app.create(prompt("waves on a beach")).await);
    for prefix in ["/luma", "/pro/luma"] {
        let early = app.get(&format!("{prefix}/generations/{id}/download_video_url")).go().await;
        assert_error(&early, 409, &["completed"]);
    }
    let task = app.wait_completed(&id).await;

    let answer = app.get(&format!("/luma/generations/{id}/download_video_url")).go().await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "the answer is just {{\"url\": ...}}: {body}");
    let download = body["url"].as_str().expect("url").to_string();
    assert!(download.starts_with(&format!("{}/files/", app.origin())), "absolute link: {download}");

    // Links are valid for an hour by default, and freshly signed on every read.
    for l in [download.as_str(), link(&task, "url"), link(&task, "download_url"), link(&task, "thumbnail")] {
        let exp: i64 = query_param(l, "exp").expect("exp").parse().expect("exp is a number");
        let left = exp - now_secs();
        assert!((3500..=3600).contains(&left), "links are valid for 3600 s by default, this one for {left} s: {l}");
    }
    // Without a configured public URL, links are built from the request's Host.
    let via_proxy = app.get(&format!("/luma/generations/{id}")).header("host", "gw.example:9000").go().await.json();
    assert!(link(&via_proxy, "url").starts_with("http://gw.example:9000/files/"), "{via_proxy:#}");
    let via_proxy = app.get(&format!("/luma/generations/{id}/download_video_url")).header("host", "gw.example:9000").go().await.json();
    assert!(via_proxy["url"].as_str().unwrap().starts_with("http://gw.example:9000/files/"), "{via_proxy}");

    // download_video_url and video.download_url: attachments.
    for url in [download.as_str(), link(&task, "download_url")] {
        let r = app.fetch(url).await;
        assert_is_mp4(&r);
        let disposition = r.header("content-disposition").unwrap_or_default();
        assert!(disposition.starts_with("attachment"), "a download link answers Content-Disposition: attachment, got {disposition:?}");
    }
    // video.url: inline.
    let full = app.fetch(link(&task, "url")).await;
    assert_is_mp4(&full);
    let disposition = full.header("content-disposition").unwrap_or_default();
    assert!(!disposition.contains("attachment"), "video.url plays inline, got Content-Disposition {disposition:?}");
    let secs = mp4_duration_secs(&full.body);
    assert!(secs > 4.0, "the video lasts about 5 s, got {secs}");
    // The thumbnail is a JPEG.
    let thumb = app.fetch(link(&task, "thumbnail")).await;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.header("content-type").as_deref(), Some("image/jpeg"));
    let decoded = image::load_from_memory_with_format(&thumb.body, image::ImageFormat::Jpeg).expect("the thumbnail decodes as JPEG");
    assert!(decoded.width() > decoded.height(), "a 16:9 video has a landscape thumbnail");

    // Byte ranges, for players that seek.
    for url in [link(&task, "url"), download.as_str()] {
        let part = app.http.get(url).header("range", "bytes=0-99").go().await;
        assert_eq!(part.status, 206, "a Range request answers 206: {}", part.text());
        assert_eq!(part.body.len(), 100);
        assert_eq!(part.body[..], full.body[..100]);
        assert_eq!(part.header("content-range"), Some(format!("bytes 0-99/{}", full.body.len())));
    }
    let tail = app.http.get(link(&task, "url")).header("range", "bytes=-10").go().await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body[..], full.body[full.body.len() - 10..]);

    // Tampered links are refused.
    let view = link(&task, "url").to_string();
    let sig = query_param(&view, "sig").expect("a signed link has sig");
    let exp: u64 = query_param(&view, "exp").expect("a signed link has exp").parse().expect("exp is a number");
    let flipped = format!("{}{}", if sig.starts_with('0') { "1" } else { "0" }, &sig[1..]);
    let thumb_path = link(&task, "thumbnail").split('?').next().unwrap().to_string();
    let refused = [
        ("a changed sig", with_param(&view, "sig", Some(&flipped)), "signature"),
        ("a sig that is not hex", with_param(&view, "sig", Some("zz")), "signature"),
        ("a later exp", with_param(&view, "exp", Some(&(exp + 3600).to_string())), "signature"),
        ("an earlier exp", with_param(&view, "exp", Some(&(exp - 1).to_string())), "signature"),
        ("no sig", with_param(&view, "sig", None), "signed"),
        ("no exp", with_param(&view, "exp", None), "signed"),
        ("a view link turned into a download", with_param(&view, "dl", Some("1")), "signature"),
        ("a download link turned into a view", with_param(&download, "dl", None), "signature"),
        ("the video's signature on the thumbnail", format!("{thumb_path}?{}", view.split_once('?').unwrap().1), "signature"),
    ];
    for (case, url, needle) in refused {
        let r = app.fetch(&url).await;
        assert_eq!(r.status, 403, "{case}: expected 403, got {}: {}", r.status, r.text());
        assert_error(&r, 403, &[needle]);
    }
    let plain = view.split('?').next().unwrap();
    assert_error(&app.fetch(plain).await, 403, &[]);
    // Nothing outside the blobs can be reached, signed or not.
    let query = view.split_once('?').unwrap().1;
    for path in ["/files/signing.key", "/files/../signing.key", "/files/..%2Fsigning.key", "/files/videos/..%2F..%2Flumagate.db", "/files/lumagate.db"] {
        let r = app.fetch(&format!("{}{path}?{query}", app.origin())).await;
        assert!(matches!(r.status, 403 | 404), "{path} must answer 403 or 404, got {}: {:.200}", r.status, r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_use_the_public_url_and_expire_after_the_configured_ttl() {
    let public = "https://video.example.com";
    let app = App::start(&[
        ("LUMAGATE_SANDBOX_DELAY_MS", "400"),
        ("LUMAGATE_LINK_TTL_SECS", "2"),
        ("LUMAGATE_PUBLIC_URL", public),
    ])
    .await;
    let id = id_of(&app.create(prompt("a lighthouse at night")).await);
    let task = app.wait_completed(&id).await;
    let answer = app.get(&format!("/luma/generations/{id}/download_video_url")).go().await.json();
    let links = [link(&task, "url"), link(&task, "download_url"), link(&task, "thumbnail"), answer["url"].as_str().unwrap()];
    for l in links {
        assert!(l.starts_with(&format!("{public}/files/")), "links are built from LUMAGATE_PUBLIC_URL: {l}");
    }
    let local = |l: &str| l.replacen(public, &app.origin(), 1);
    let fresh = app.fetch(&local(answer["url"].as_str().unwrap())).await;
    assert_eq!(fresh.status, 200, "a fresh link works: {}", fresh.text());

    // Wait (by the clock, not by guess) until the link's own expiry second has passed;
    // the server refuses once its clock (the same one) is past `exp`.
    let exp: i64 = query_param(answer["url"].as_str().unwrap(), "exp").unwrap().parse().unwrap();
    assert!(exp - now_secs() <= 3, "a 2 s TTL gives a link that expires within 2 s (exp {exp}, now {})", now_secs());
    while now_secs() <= exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for l in links {
        let r = app.fetch(&local(l)).await;
        assert_error(&r, 403, &["expired"]);
    }
    // Every read signs fresh links.
    let again = app.task(&id).await;
    let r = app.fetch(&local(link(&again, "url"))).await;
    assert_eq!(r.status, 200, "a freshly read link works again: {}", r.text());
}
