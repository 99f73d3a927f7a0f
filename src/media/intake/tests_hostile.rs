//! The hostile corpus: decompression bombs, truncated and corrupt files, non-images,
//! oversized base64.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use image::ImageFormat;

use super::tests_decode::{crc32, data_uri, encode, picture, png, refused, run};
use super::*;

/// A valid small PNG whose IHDR is rewritten to declare `w`×`h`, with a correct CRC.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut p = png(1, 1);
    assert_eq!(&p[12..16], b"IHDR");
    p[16..20].copy_from_slice(&w.to_be_bytes());
    p[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&p[12..29]);
    p[29..33].copy_from_slice(&crc.to_be_bytes());
    p
}

#[tokio::test]
async fn decompression_bomb_is_refused_before_decoding() {
    let e = refused(&data_uri("image/png", &png_declaring(100_000, 100_000))).await;
    assert_eq!(
        e.to_string(),
        "image_url: image declares 100000×100000 pixels, the limit is 40000000 pixels"
    );
    assert!(!e.is_too_large());
    let e = refused(&data_uri("image/png", &png_declaring(9000, 10))).await;
    assert_eq!(
        e.to_string(),
        "image_url: image declares 9000×10 pixels, each side may be at most 8192 pixels"
    );
    // Within the header limits but the data holds one pixel: refused by the full decode.
    let e = refused(&data_uri("image/png", &png_declaring(2000, 2000))).await;
    assert!(
        matches!(
            e,
            IntakeError::Corrupt {
                kind: ImageKind::Png,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("image_url: the PNG image is truncated or corrupt ("),
        "{e}"
    );
}

#[tokio::test]
async fn truncated_and_corrupt_files_are_refused() {
    let jpeg = encode(&picture(64, 48), ImageFormat::Jpeg);
    let e = refused(&data_uri("image/jpeg", &jpeg[..jpeg.len() / 2])).await;
    assert!(
        matches!(
            e,
            IntakeError::Corrupt {
                kind: ImageKind::Jpeg,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("image_url: the JPEG image is truncated or corrupt ("),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("(the data ends before the end-of-image marker)"),
        "{e}"
    );
    // Cut off just before the end marker.
    let e = refused(&data_uri("image/jpeg", &jpeg[..jpeg.len() - 2])).await;
    assert!(
        matches!(
            e,
            IntakeError::Corrupt {
                kind: ImageKind::Jpeg,
                ..
            }
        ),
        "{e:?}"
    );

    // Bytes after the end marker (some cameras append data) are fine.
    let k = run(&data_uri("image/jpeg", &[&jpeg[..], b"trailer"].concat()))
        .await
        .unwrap();
    assert_eq!((k.format, k.width, k.height), (ImageKind::Jpeg, 64, 48));

    let png = png(64, 48);
    let e = refused(&data_uri("image/png", &png[..png.len() - 20])).await;
    assert!(
        matches!(
            e,
            IntakeError::Corrupt {
                kind: ImageKind::Png,
                ..
            }
        ),
        "{e:?}"
    );
    // Header only.
    let e = refused(&data_uri("image/png", &png[..40])).await;
    assert!(
        matches!(
            e,
            IntakeError::Corrupt {
                kind: ImageKind::Png,
                ..
            }
        ),
        "{e:?}"
    );

    for (format, kind) in [
        (ImageFormat::Gif, ImageKind::Gif),
        (ImageFormat::WebP, ImageKind::Webp),
    ] {
        let bytes = encode(&picture(64, 48), format);
        let e = refused(&data_uri("image/x", &bytes[..bytes.len() / 2])).await;
        assert!(
            matches!(&e, IntakeError::Corrupt { kind: k, .. } if *k == kind),
            "{format:?}: {e:?}"
        );
    }
}

#[tokio::test]
async fn non_images_are_refused() {
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>"#;
    let e = refused(&data_uri("image/svg+xml", svg)).await;
    assert_eq!(
        e.to_string(),
        "image_url: not a PNG, JPEG, WebP or GIF image (it looks like an SVG image)"
    );
    let e = refused(&data_uri("image/png", b"just some text\nover two lines\n")).await;
    assert_eq!(
        e.to_string(),
        "image_url: not a PNG, JPEG, WebP or GIF image (it looks like text)"
    );
    let e = refused(&data_uri("image/png", b"<!DOCTYPE html><html></html>")).await;
    assert_eq!(
        e.to_string(),
        "image_url: not a PNG, JPEG, WebP or GIF image (it looks like an HTML page)"
    );
    let e = refused(&data_uri("image/png", &[0u8; 64])).await;
    assert_eq!(
        e.to_string(),
        "image_url: not a PNG, JPEG, WebP or GIF image"
    );
    let e = refused(&data_uri(
        "image/bmp",
        b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0",
    ))
    .await;
    assert_eq!(
        e.to_string(),
        "image_url: not a PNG, JPEG, WebP or GIF image (it looks like BMP)"
    );
    // Bare base64 of text: the message names the accepted forms.
    let e = refused(&STANDARD.encode("hello, this is a text file, not an image")).await;
    assert_eq!(
        e.to_string(),
        "image_url: expected an http(s) URL, a data:image/...;base64, URI or base64 image data (decoded as base64 it is text, not a PNG, JPEG, WebP or GIF image)"
    );
}

#[tokio::test]
async fn huge_base64_is_refused_cheaply() {
    let huge = "A".repeat(30_000_000);
    let started = std::time::Instant::now();
    for input in [huge.clone(), format!("data:image/png;base64,{huge}")] {
        let e = refused(&input).await;
        assert!(e.is_too_large(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "image_url: image is 22500000 bytes, the limit is 10485760 bytes"
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn mutated_files_never_panic() {
    // Deterministic xorshift, no extra dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let limits = IntakeLimits::default();
    let started = std::time::Instant::now();
    for format in [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::WebP,
        ImageFormat::Gif,
    ] {
        let original = encode(&picture(48, 32), format);
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..150 {
            let mut bytes = original.clone();
            if round % 3 == 0 {
                bytes.truncate(next(bytes.len()) + 1);
            } else {
                for _ in 0..1 + next(8) {
                    let at = next(bytes.len());
                    bytes[at] = next(256) as u8;
                }
            }
            match decode::validate("image_url", bytes.into(), &limits).await {
                Ok(k) => {
                    assert!(k.width <= limits.max_side && k.height <= limits.max_side);
                    accepted += 1;
                }
                Err(e) => {
                    assert!(e.to_string().starts_with("image_url: "), "{e}");
                    assert!(
                        !matches!(e, IntakeError::Corrupt { ref detail, .. } if detail.contains("could not read")),
                        "{format:?} panicked: {e}"
                    );
                    refused += 1;
                }
            }
        }
        assert!(refused > 0, "{format:?}: {accepted} accepted");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
