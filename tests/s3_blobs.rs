//! The S3 blob store against a real S3-compatible server on loopback: put, get, links
//! presigned with an expiry, byte ranges through a link, downloads, readiness.

#[path = "support/s3.rs"]
mod s3;

use std::time::Duration;

use bytes::Bytes;
use lumagate::blobs::{BlobError, BlobStore, LinkKind, S3Blobs, S3Location};
use rusty_s3::Credentials;

async fn bucket(server: &s3::S3Server) -> S3Blobs {
    let name = format!("lg-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let location = S3Location::parse(&format!("s3://{name}?endpoint={}&region=us-east-1", server.endpoint)).unwrap();
    let blobs = S3Blobs::new(&location, Credentials::new(s3::ACCESS_KEY, s3::SECRET_KEY)).unwrap();
    blobs.create_bucket().await.expect("creating the test bucket");
    blobs
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn payload() -> Bytes {
    Bytes::from((0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

#[tokio::test]
async fn blobs_round_trip_and_missing_ones_are_not_found() {
    let Some(server) = s3::s3_server() else { return };
    let blobs = bucket(&server).await;
    assert!(blobs.ready().await, "an existing bucket is ready");
    blobs.put("videos/a.mp4", payload()).await.unwrap();
    assert_eq!(blobs.get("videos/a.mp4").await.unwrap(), payload());
    blobs.put("videos/a.mp4", Bytes::from_static(b"replaced")).await.unwrap();
    assert_eq!(blobs.get("videos/a.mp4").await.unwrap(), Bytes::from_static(b"replaced"));
    assert!(matches!(blobs.get("videos/none.mp4").await, Err(BlobError::NotFound(_))));
    assert!(matches!(blobs.get("../etc/passwd").await, Err(BlobError::NotFound(_))), "malformed keys are never sent");
    assert!(blobs.put("a/../b", payload()).await.is_err());
}

#[tokio::test]
async fn presigned_links_serve_byte_ranges_and_downloads() {
    let Some(server) = s3::s3_server() else { return };
    let blobs = bucket(&server).await;
    blobs.put("videos/r.mp4", payload()).await.unwrap();
    let link = blobs.link("videos/r.mp4", LinkKind::View, Duration::from_secs(600), "http://ignored");
    assert!(link.starts_with(&server.endpoint) && link.contains("X-Amz-Expires=600"), "{link}");

    let whole = http().get(&link).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap(), payload());

    let part = http().get(&link).header("Range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(part.status(), 206, "a player seeks with byte ranges");
    assert_eq!(part.headers()["content-range"], "bytes 1000-1999/100000");
    assert_eq!(part.bytes().await.unwrap(), payload().slice(1000..2000));

    // A download link asks S3 to answer with an attachment disposition; the parameter is
    // part of the signature, so the link still verifies.
    let download = blobs.link("videos/r.mp4", LinkKind::Download, Duration::from_secs(600), "http://ignored");
    let asked = url::Url::parse(&download).unwrap().query_pairs().find(|(k, _)| k == "response-content-disposition").map(|(_, v)| v.into_owned());
    assert_eq!(asked.as_deref(), Some("attachment; filename=\"r.mp4\""));
    assert_eq!(http().get(&download).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn links_expire_and_tampered_links_are_refused() {
    let Some(server) = s3::s3_server() else { return };
    let blobs = bucket(&server).await;
    blobs.put("thumbnails/t.jpg", Bytes::from_static(b"jpeg")).await.unwrap();
    let short = blobs.link("thumbnails/t.jpg", LinkKind::View, Duration::from_secs(1), "");
    assert_eq!(http().get(&short).send().await.unwrap().status(), 200);
    let tampered = short.replace("thumbnails/t.jpg", "thumbnails/u.jpg");
    assert_eq!(http().get(&tampered).send().await.unwrap().status(), 403, "the signature covers the key");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(http().get(&short).send().await.unwrap().status(), 403, "an expired link is refused");
}

#[tokio::test]
async fn a_missing_bucket_or_wrong_secret_is_not_ready() {
    let Some(server) = s3::s3_server() else { return };
    let location = S3Location::parse(&format!("s3://lg-never-created?endpoint={}", server.endpoint)).unwrap();
    let blobs = S3Blobs::new(&location, Credentials::new(s3::ACCESS_KEY, s3::SECRET_KEY)).unwrap();
    assert!(!blobs.ready().await);
    let nowhere = S3Location::parse("s3://b?endpoint=http://127.0.0.1:9").unwrap();
    let blobs = S3Blobs::new(&nowhere, Credentials::new(s3::ACCESS_KEY, s3::SECRET_KEY)).unwrap();
    assert!(!blobs.ready().await, "an unreachable server is not ready");
    assert!(matches!(blobs.put("videos/x.mp4", payload()).await, Err(BlobError::Io(_))));
}
