//! Tests of base64 / data URI intake, format sniffing and the hostile corpus.

use std::io::Cursor;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

use super::*;

pub(super) fn picture(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7) as u8, (y * 13) as u8, ((x ^ y) * 31) as u8])
    }))
}

pub(super) fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

pub(super) fn png(w: u32, h: u32) -> Vec<u8> {
    encode(&picture(w, h), ImageFormat::Png)
}

pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn fetcher() -> Fetcher {
    Fetcher::new(&IntakeLimits::default(), vec![])
}

pub(super) async fn run(input: &str) -> Result<Keyframe, IntakeError> {
    intake("image_url", input, &IntakeLimits::default(), &fetcher()).await
}

pub(super) fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", STANDARD.encode(bytes))
}

pub(super) async fn refused(input: &str) -> IntakeError {
    match run(input).await {
        Ok(k) => panic!("accepted {k:?}"),
        Err(e) => e,
    }
}

#[test]
fn crc_matches_encoder() {
    let p = png(3, 2);
    assert_eq!(crc32(&p[12..29]).to_be_bytes(), p[29..33]);
}

#[tokio::test]
async fn data_uri_in_each_format() {
    let img = picture(37, 21);
    for (format, kind, mime) in [
        (ImageFormat::Png, ImageKind::Png, "image/png"),
        (ImageFormat::Jpeg, ImageKind::Jpeg, "image/jpeg"),
        (ImageFormat::WebP, ImageKind::Webp, "image/webp"),
        (ImageFormat::Gif, ImageKind::Gif, "image/gif"),
    ] {
        let bytes = encode(&img, format);
        let k = run(&data_uri(mime, &bytes))
            .await
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!((k.format, k.width, k.height), (kind, 37, 21), "{format:?}");
        assert_eq!(&k.bytes[..], &bytes[..], "the original bytes are kept");
        assert_eq!(k.format.content_type(), mime);
    }
}

#[tokio::test]
async fn format_comes_from_content_not_declared_type() {
    let k = run(&data_uri("image/jpeg", &png(4, 3))).await.unwrap();
    assert_eq!((k.format, k.format.extension()), (ImageKind::Png, "png"));
    let k = run(&format!(
        "  DATA:IMAGE/GIF;charset=x;BASE64,{}\n",
        STANDARD.encode(png(4, 3))
    ))
    .await
    .unwrap();
    assert_eq!(k.format, ImageKind::Png);
    let jpeg = encode(&picture(8, 8), ImageFormat::Jpeg);
    let k = run(&data_uri("application/octet-stream", &jpeg))
        .await
        .unwrap();
    assert_eq!((k.format, k.format.extension()), (ImageKind::Jpeg, "jpg"));
}

#[tokio::test]
async fn bare_base64_variants() {
    let bytes = (1..20)
        .map(|w| png(w, 7))
        .find(|p| p.len() % 3 != 0)
        .unwrap();
    let padded = STANDARD.encode(&bytes);
    assert!(
        padded.ends_with('='),
        "test needs a padded encoding, got {} chars",
        padded.len()
    );
    let wrapped: String = padded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    for input in [
        padded.clone(),
        STANDARD_NO_PAD.encode(&bytes),
        URL_SAFE_NO_PAD.encode(&bytes),
        wrapped,
        format!("\n {padded} \t"),
    ] {
        let k = run(&input)
            .await
            .unwrap_or_else(|e| panic!("{input:.40}: {e}"));
        assert_eq!((k.format, k.height), (ImageKind::Png, 7));
        assert_eq!(&k.bytes[..], &bytes[..]);
    }
}

#[tokio::test]
async fn bad_base64_is_refused_with_a_reason() {
    // '+' and '_' together: two alphabets.
    let e = refused("data:image/png;base64,iVBO+_AA").await;
    assert!(e.to_string().contains("mixes the standard"), "{e}");
    let e = refused("data:image/png;base64,iVBORw0K!!!").await;
    assert_eq!(
        e.to_string(),
        "image_url: invalid base64 image data (unexpected character '!' at position 8)"
    );
    let e = refused("data:image/png;base64,AAAAA").await;
    assert!(e.to_string().contains("not a possible length"), "{e}");
    let e = refused("data:image/png;base64,AA==AA").await;
    assert!(e.to_string().contains("padding in the middle"), "{e}");
}

#[tokio::test]
async fn other_inputs_are_refused_clearly() {
    let cases = [
        (
            "ftp://example.com/a.png",
            "image_url: URL scheme \"ftp\" is not allowed, only http and https",
        ),
        (
            "file:///etc/passwd",
            "image_url: URL scheme \"file\" is not allowed, only http and https",
        ),
        (
            "javascript:alert(1)",
            "image_url: URL scheme \"javascript\" is not allowed, only http and https",
        ),
        ("   ", "image_url: no image given"),
        (
            "data:image/png,rawbytes",
            "image_url: invalid data URI (only ;base64, data URIs are accepted)",
        ),
        (
            "data:image/png;base64",
            "image_url: invalid data URI (no ',' before the data)",
        ),
        (
            "data:image/png;base64,",
            "image_url: image is empty (0 bytes)",
        ),
        ("http://", "image_url: invalid URL (empty host)"),
    ];
    for (input, want) in cases {
        let e = refused(input).await;
        assert_eq!(e.to_string(), want, "{input}");
        assert!(!e.is_too_large());
        assert_eq!(e.field(), "image_url");
    }
    let e = refused("random text, not an image!").await;
    assert!(matches!(e, IntakeError::Unrecognized { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(
            "image_url: expected an http(s) URL, a data:image/...;base64, URI or base64 image data"
        ),
        "{e}"
    );
    // Only base64 letters: decodes, but to garbage.
    let e = refused("hello world").await;
    assert_eq!(
        e.to_string(),
        "image_url: expected an http(s) URL, a data:image/...;base64, URI or base64 image data (decoded as base64 it is not a PNG, JPEG, WebP or GIF image)"
    );
}

#[tokio::test]
async fn byte_limit_is_exact() {
    let bytes = png(16, 16);
    let uri = data_uri("image/png", &bytes);
    let limits = |max_bytes| IntakeLimits {
        max_bytes,
        ..IntakeLimits::default()
    };
    let k = intake("image_end_url", &uri, &limits(bytes.len()), &fetcher())
        .await
        .unwrap();
    assert_eq!(k.bytes.len(), bytes.len());
    let e = intake("image_end_url", &uri, &limits(bytes.len() - 1), &fetcher())
        .await
        .unwrap_err();
    assert!(e.is_too_large());
    assert_eq!(
        e.to_string(),
        format!(
            "image_end_url: image is {} bytes, the limit is {} bytes",
            bytes.len(),
            bytes.len() - 1
        )
    );
}

#[tokio::test]
async fn pixel_and_side_limits_are_configurable() {
    let uri = data_uri("image/png", &png(40, 30));
    let strict = IntakeLimits {
        max_pixels: 1000,
        ..IntakeLimits::default()
    };
    let e = intake("image_url", &uri, &strict, &fetcher())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "image_url: image declares 40×30 pixels, the limit is 1000 pixels"
    );
    let narrow = IntakeLimits {
        max_side: 32,
        ..IntakeLimits::default()
    };
    let e = intake("image_url", &uri, &narrow, &fetcher())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "image_url: image declares 40×30 pixels, each side may be at most 32 pixels"
    );
    let exact = IntakeLimits {
        max_side: 40,
        max_pixels: 1200,
        ..IntakeLimits::default()
    };
    assert!(intake("image_url", &uri, &exact, &fetcher()).await.is_ok());
}

#[test]
fn kinds_and_defaults() {
    let d = IntakeLimits::default();
    assert_eq!(
        (
            d.max_bytes,
            d.max_pixels,
            d.max_side,
            d.fetch_timeout.as_secs(),
            d.max_redirects
        ),
        (10 << 20, 40_000_000, 8192, 15, 5)
    );
    let table: Vec<_> = [
        ImageKind::Png,
        ImageKind::Jpeg,
        ImageKind::Webp,
        ImageKind::Gif,
    ]
    .iter()
    .map(|k| (k.content_type(), k.extension(), k.to_string()))
    .collect();
    assert_eq!(table[2], ("image/webp", "webp", "WebP".to_owned()));
    assert_eq!(table[1], ("image/jpeg", "jpg", "JPEG".to_owned()));
    let e = IntakeError::Timeout {
        field: "image_url".into(),
        timeout: Duration::from_secs(15),
    };
    assert_eq!(e.to_string(), "image_url: fetch timed out after 15 s");
    let e = IntakeError::Timeout {
        field: "image_url".into(),
        timeout: Duration::from_millis(300),
    };
    assert_eq!(e.to_string(), "image_url: fetch timed out after 0.3 s");
}
