//! The sandbox renderer: real, deterministic H.264 MP4 videos made offline in pure Rust.
//!
//! A [`RenderSpec`] becomes a streamable MP4 (`moov` before `mdat`, 24 fps, yuv420p) and a
//! JPEG thumbnail. What the video shows follows the spec:
//!
//! - **prompt only**: a flowing colour field with drifting orbs whose palette and motion come
//!   from the prompt's hash, with the prompt as a caption;
//! - **`start_image`**: the first frame is the image fitted to the frame (scaled to cover,
//!   centre-cropped); then the camera slowly pans and zooms while the caption fades in;
//! - **`end_image`**: the video dissolves into the fitted image, which is exactly the last frame;
//! - **`looped`**: the video dissolves back into its own first frame, so the last frame equals
//!   the first (this takes precedence over `end_image`);
//! - **`parent`** (extend): the parent's footage, rendered from its spec, followed by this spec's
//!   `frames` frames that start on the parent's last frame and dissolve into this prompt's scene;
//!   the whole chain is rendered at this spec's size, and an extension's `start_image` is unused
//!   (the parent's last frame is its start);
//! - **`watermark`**: "lumagate" in a dark box in the bottom-right corner ([`watermark_rect`]),
//!   drawn last on every frame (parents' own `watermark` flags are ignored).
//!
//! Frames are generated and encoded one at a time, so memory does not grow with duration.
//! Same spec, same bytes: there is no randomness, clock or thread-count dependence.

mod encode;
mod faststart;
mod picture;
mod scene;
mod segment;
#[cfg(test)]
mod tests;
mod text;

use image::RgbImage;

use self::segment::{Segment, Target};

/// Frames per second of every rendered video.
pub const FPS: u32 = 24;

/// The largest frame openh264 encodes: 3840×2160, either way round.
const MAX_LONG_SIDE: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;
/// The watermark's box halves what is under it; its letters are nearly opaque white.
const WATERMARK_BACKDROP: u32 = 128;
const WATERMARK_INK: u32 = 230;
/// The smallest frame it encodes: one macroblock.
const MIN_SIDE: u32 = 16;
/// Thumbnails are scaled so that their long side is at most this.
const THUMBNAIL_LONG_SIDE: u32 = 480;

/// What to render. See the module documentation for how each field shows in the video.
/// (No `Debug`: it would print every pixel of the keyframes.)
#[derive(Clone, Default)]
pub struct RenderSpec {
    /// Frame width in pixels: even, 16 to 3840 (see [`frame_size`]).
    pub width: u32,
    /// Frame height in pixels: even, 16 to 3840, the short side at most 2160.
    pub height: u32,
    /// Frames of this spec's own segment, at [`FPS`] (a parent's frames come on top).
    pub frames: u32,
    /// Decides the scene's colours and motion, and is shown as the caption.
    pub prompt: String,
    /// The first frame, fitted to the frame (unused by an extension).
    pub start_image: Option<RgbImage>,
    /// The last frame, fitted to the frame.
    pub end_image: Option<RgbImage>,
    /// End on the video's first frame (takes precedence over `end_image`).
    pub looped: bool,
    /// Mark every frame in the bottom-right corner ([`watermark_rect`]).
    pub watermark: bool,
    /// Extend this video: its footage comes first, and this segment starts from its last frame.
    pub parent: Option<Box<RenderSpec>>,
}

/// A finished video.
#[derive(Clone)]
pub struct Rendered {
    /// The MP4 file (H.264, yuv420p, 24 fps), `moov` before `mdat`.
    pub mp4: Vec<u8>,
    /// JPEG of the first frame (as shown, watermark included), long side at most 480.
    pub thumbnail_jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// All frames, the parents' included.
    pub frames: u32,
    /// `frames / FPS`.
    pub duration_secs: f64,
}

/// Why a video could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("invalid render spec: {0}")]
    InvalidSpec(String),
    #[error("H.264 encoding failed: {0}")]
    Encode(String),
    #[error("MP4 muxing failed: {0}")]
    Mux(String),
    #[error("thumbnail encoding failed: {0}")]
    Thumbnail(String),
}

/// Frame size for an aspect ratio (`(w, h)`, e.g. `(16, 9)`) at a short side of 720 or 1080:
/// the long side follows the ratio, rounded to the nearest even number.
pub fn frame_size(aspect: (u32, u32), short_side: u32) -> (u32, u32) {
    let (aw, ah) = (u64::from(aspect.0.max(1)), u64::from(aspect.1.max(1)));
    let (big, small) = (aw.max(ah), aw.min(ah));
    let short = u64::from(short_side);
    let long = 2 * ((short * big + small) / (2 * small));
    let long = u32::try_from(long).unwrap_or(u32::MAX);
    if aw >= ah {
        (long, short_side)
    } else {
        (short_side, long)
    }
}

/// The watermark's rectangle `(x, y, w, h)` in a `width`×`height` frame; watermarking never
/// changes a pixel outside it.
pub fn watermark_rect(width: u32, height: u32) -> (u32, u32, u32, u32) {
    text::watermark_rect(width, height)
}

/// The watermark as an RGBA PNG for a `width`×`height` frame, with where it goes (`x`, `y`):
/// the same look as the rendered one (a half-dark box, nearly white letters), for FFmpeg to
/// burn onto videos made elsewhere.
pub fn watermark_png(width: u32, height: u32) -> Result<(u32, u32, Vec<u8>), RenderError> {
    let (x, y, w, h) = watermark_rect(width, height);
    // Drawn at full strength on grey, so backdrop (black) and ink (white) tell apart.
    let mut frame = RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
    text::watermark(width, height).draw(&mut frame, 256, 256);
    let mut png = image::RgbaImage::new(w.max(1), h.max(1));
    for (px, py, out) in png.enumerate_pixels_mut() {
        let ink = frame.get_pixel((x + px).min(width - 1), (y + py).min(height - 1))[0] > 128;
        *out = if ink {
            image::Rgba([255, 255, 255, WATERMARK_INK as u8])
        } else {
            image::Rgba([0, 0, 0, WATERMARK_BACKDROP as u8])
        };
    }
    let mut bytes = Vec::new();
    png.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok((x, y, bytes))
}

/// Renders `spec` (and its parents) into an MP4 and a thumbnail.
pub fn render(spec: &RenderSpec) -> Result<Rendered, RenderError> {
    let (width, height) = (spec.width, spec.height);
    let chain = lineage(spec)?;
    let total = chain
        .iter()
        .try_fold(0u32, |sum, s| sum.checked_add(s.frames));
    let total = total.ok_or_else(|| invalid("too many frames"))?;

    let mut encoder = encode::Mp4Encoder::new(width, height)?;
    let watermark = spec.watermark.then(|| text::watermark(width, height));
    let mut frame = RgbImage::new(width, height);
    let mut scratch = RgbImage::new(width, height);
    // Kept without the watermark: the first frame is what a loop returns to, and a
    // segment's last frame is where the next segment starts.
    let mut first: Option<RgbImage> = None;
    let mut last: Option<RgbImage> = None;
    let mut thumbnail_jpeg = None;

    for (k, part) in chain.iter().enumerate() {
        let extends = k > 0;
        let start = match (extends, &part.start_image) {
            (true, _) => last.take(),
            (false, Some(img)) => Some(picture::cover(img, width, height)),
            (false, None) => None,
        };
        let target = match (&part.end_image, part.looped) {
            (_, true) => Some(Target::FirstFrame),
            (Some(img), false) => Some(Target::Image(picture::cover(img, width, height))),
            (None, false) => None,
        };
        let segment = Segment::new(part, width, height, start, extends, target);
        for i in 0..part.frames {
            segment.draw(i, &mut frame, &mut scratch, first.as_ref());
            if first.is_none() {
                first = Some(frame.clone());
            }
            if i + 1 == part.frames && k + 1 < chain.len() {
                last = Some(frame.clone());
            }
            if let Some(mark) = &watermark {
                mark.draw(&mut frame, WATERMARK_BACKDROP, WATERMARK_INK);
            }
            if thumbnail_jpeg.is_none() {
                thumbnail_jpeg = Some(thumbnail(&frame)?);
            }
            encoder.push(&frame)?;
        }
    }

    Ok(Rendered {
        mp4: encoder.finish()?,
        thumbnail_jpeg: thumbnail_jpeg.expect("at least one frame was rendered"),
        width,
        height,
        frames: total,
        duration_secs: f64::from(total) / f64::from(FPS),
    })
}

fn invalid(why: impl Into<String>) -> RenderError {
    RenderError::InvalidSpec(why.into())
}

/// The spec's ancestry, oldest first, checked for what the encoder and the layout need.
fn lineage(spec: &RenderSpec) -> Result<Vec<&RenderSpec>, RenderError> {
    let (w, h) = (spec.width, spec.height);
    if w < MIN_SIDE || h < MIN_SIDE || w % 2 == 1 || h % 2 == 1 {
        return Err(invalid(format!(
            "frame size {w}x{h} must be even and at least 16x16"
        )));
    }
    if w.max(h) > MAX_LONG_SIDE || w.min(h) > MAX_SHORT_SIDE {
        return Err(invalid(format!(
            "frame size {w}x{h} is larger than 3840x2160"
        )));
    }
    let mut chain = Vec::new();
    let mut next = Some(spec);
    while let Some(s) = next {
        if s.frames == 0 {
            return Err(invalid("every segment needs at least one frame"));
        }
        for img in [&s.start_image, &s.end_image].into_iter().flatten() {
            if img.width() == 0 || img.height() == 0 {
                return Err(invalid("keyframe images must not be empty"));
            }
        }
        chain.push(s);
        next = s.parent.as_deref();
    }
    chain.reverse();
    Ok(chain)
}

/// The frame as a JPEG, scaled down so that its long side is at most 480 pixels.
fn thumbnail(frame: &RgbImage) -> Result<Vec<u8>, RenderError> {
    let (w, h) = frame.dimensions();
    let long = w.max(h);
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
    let result = if long <= THUMBNAIL_LONG_SIDE {
        frame.write_with_encoder(encoder)
    } else {
        let scale = |side: u32| {
            ((u64::from(side) * u64::from(THUMBNAIL_LONG_SIDE) + u64::from(long) / 2)
                / u64::from(long))
            .max(1) as u32
        };
        picture::shrink(frame, scale(w), scale(h)).write_with_encoder(encoder)
    };
    result.map_err(|e| RenderError::Thumbnail(e.to_string()))?;
    Ok(out)
}
