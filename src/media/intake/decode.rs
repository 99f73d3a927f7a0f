//! Format sniffing by content and image validation: declared dimensions first,
//! then one full decode under allocation limits.

use std::io::Cursor;

use bytes::Bytes;
use image::{ImageError, ImageFormat, ImageReader};

use super::{ImageKind, IntakeError, IntakeLimits, Keyframe};

/// Checks the bytes are a PNG, JPEG, WebP or GIF of acceptable dimensions that
/// decodes cleanly. Header parsing and decoding run on a blocking thread; a decoder
/// panic there becomes a "corrupt" refusal, never a crashed request.
pub(super) async fn validate(
    field: &str,
    bytes: Bytes,
    limits: &IntakeLimits,
) -> Result<Keyframe, IntakeError> {
    check_size(field, &bytes, limits)?;
    let format = sniff(field, &bytes)?;
    let (field_owned, data, lim) = (field.to_owned(), bytes.clone(), limits.clone());
    let checked = tokio::task::spawn_blocking(move || {
        let (format, width, height) = inspect(&field_owned, &data, &lim)?;
        full_decode(&field_owned, format, &data, &lim)?;
        Ok::<_, IntakeError>((width, height))
    })
    .await;
    let (width, height) = match checked {
        Ok(result) => result?,
        Err(join) => {
            tracing::warn!(field, error = %join, "image decoder panicked");
            return Err(IntakeError::Corrupt {
                field: field.to_owned(),
                kind: format,
                detail: "the decoder could not read it".to_owned(),
            });
        }
    };
    Ok(Keyframe {
        bytes,
        format,
        width,
        height,
    })
}

fn check_size(field: &str, bytes: &[u8], limits: &IntakeLimits) -> Result<(), IntakeError> {
    if bytes.len() > limits.max_bytes {
        return Err(IntakeError::TooLarge {
            field: field.to_owned(),
            size: bytes.len() as u64,
            limit: limits.max_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(IntakeError::EmptyImage {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// Size, format and declared-dimension checks: only the header is parsed.
pub(super) fn inspect(
    field: &str,
    bytes: &[u8],
    limits: &IntakeLimits,
) -> Result<(ImageKind, u32, u32), IntakeError> {
    check_size(field, bytes, limits)?;
    let format = sniff(field, bytes)?;
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), image_format(format))
        .into_dimensions()
        .map_err(|e| image_error(field, format, e))?;
    check_dimensions(field, width, height, limits)?;
    Ok((format, width, height))
}

fn check_dimensions(
    field: &str,
    width: u32,
    height: u32,
    limits: &IntakeLimits,
) -> Result<(), IntakeError> {
    let field = field.to_owned();
    if width == 0 || height == 0 {
        return Err(IntakeError::ZeroArea {
            field,
            width,
            height,
        });
    }
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(IntakeError::TooManyPixels {
            field,
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(IntakeError::SideTooLong {
            field,
            width,
            height,
            limit: limits.max_side,
        });
    }
    Ok(())
}

/// Decodes the whole image once (first frame for animations) under allocation limits.
fn full_decode(
    field: &str,
    format: ImageKind,
    bytes: &[u8],
    limits: &IntakeLimits,
) -> Result<(), IntakeError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format(format));
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    // 8 bytes per pixel covers 16-bit RGBA output; 16 MiB for decoder state.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(16 << 20));
    reader.limits(lim);
    reader.decode().map_err(|e| image_error(field, format, e))?;
    if format == ImageKind::Jpeg && !jpeg_has_end(bytes) {
        // The JPEG decoder pads a cut-off scan with grey instead of failing.
        return Err(IntakeError::Corrupt {
            field: field.to_owned(),
            kind: format,
            detail: "the data ends before the end-of-image marker".to_owned(),
        });
    }
    Ok(())
}

/// Whether a JPEG has an end-of-image marker after its first scan. Walks the marker
/// segments (so an EXIF thumbnail's markers are skipped) to the first SOS, then looks
/// for `FF D9`: inside entropy-coded data `FF` is always followed by `00` or a restart
/// marker, so `FF D9` there is the real end.
fn jpeg_has_end(b: &[u8]) -> bool {
    let mut pos = 2; // after SOI
    while pos + 4 <= b.len() {
        if b[pos] != 0xFF {
            return false;
        }
        let marker = b[pos + 1];
        match marker {
            0xFF => pos += 1, // fill byte
            0x01 | 0xD0..=0xD7 => pos += 2,
            0xD9 => return true,
            _ => {
                let len = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
                pos += 2 + len;
                if marker == 0xDA {
                    return b
                        .get(pos..)
                        .is_some_and(|scan| scan.windows(2).any(|w| w == [0xFF, 0xD9]));
                }
            }
        }
    }
    false
}

fn image_format(kind: ImageKind) -> ImageFormat {
    match kind {
        ImageKind::Png => ImageFormat::Png,
        ImageKind::Jpeg => ImageFormat::Jpeg,
        ImageKind::Webp => ImageFormat::WebP,
        ImageKind::Gif => ImageFormat::Gif,
    }
}

fn image_error(field: &str, kind: ImageKind, e: ImageError) -> IntakeError {
    let field = field.to_owned();
    match e {
        ImageError::Limits(l) => IntakeError::DecodeLimit {
            field,
            kind,
            detail: l.to_string(),
        },
        other => IntakeError::Corrupt {
            field,
            kind,
            detail: clip(&other.to_string(), 200),
        },
    }
}

/// The format by magic bytes; only the four accepted formats pass.
pub(super) fn sniff(field: &str, bytes: &[u8]) -> Result<ImageKind, IntakeError> {
    let detected = match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => return Ok(ImageKind::Png),
        Ok(ImageFormat::Jpeg) => return Ok(ImageKind::Jpeg),
        Ok(ImageFormat::WebP) => return Ok(ImageKind::Webp),
        Ok(ImageFormat::Gif) => return Ok(ImageKind::Gif),
        Ok(other) => Some(format!("{other:?}").to_uppercase()),
        Err(_) => describe_unknown(bytes),
    };
    Err(IntakeError::UnsupportedFormat {
        field: field.to_owned(),
        detected,
    })
}

/// A best guess at what non-image bytes are, for the error message.
fn describe_unknown(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(1024)];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // Cut in the middle of a character by the 1024-byte window.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    let lower = text.trim_start().to_ascii_lowercase();
    let what = if lower.contains("<svg") {
        "an SVG image"
    } else if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        "an HTML page"
    } else if lower.starts_with("<?xml") {
        "an XML document"
    } else if lower.starts_with('{') || lower.starts_with('[') {
        "JSON"
    } else if text
        .chars()
        .all(|c| !c.is_control() || c.is_ascii_whitespace())
    {
        "text"
    } else {
        return None;
    };
    Some(what.to_owned())
}

/// At most `max` characters of `s`, for echoing input into messages.
pub(super) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
