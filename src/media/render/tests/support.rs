//! Helpers for the renderer's tests: they look at the rendered files with ffprobe and ffmpeg,
//! as a player would, rather than trusting the renderer's own view of them.

use std::io::Write;
use std::process::Command;

use image::RgbImage;

use super::super::{render, RenderSpec, Rendered};

/// A small 16:9 frame: big enough for captions and the watermark, fast in debug builds.
pub const W: u32 = 384;
pub const H: u32 = 216;

/// Per-channel mean absolute difference allowed between a decoded frame and the picture it
/// should show (H.264 at the renderer's quantizer stays well under this).
pub const SAME_PICTURE: f64 = 6.0;

pub fn spec(prompt: &str, frames: u32) -> RenderSpec {
    RenderSpec {
        width: W,
        height: H,
        frames,
        prompt: prompt.into(),
        ..RenderSpec::default()
    }
}

pub fn rendered(spec: &RenderSpec) -> Rendered {
    render(spec).expect("the spec renders")
}

/// The MP4 in a temporary file, which lives as long as the returned handle.
pub fn mp4_file(video: &Rendered) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".mp4")
        .tempfile()
        .expect("temp file");
    file.write_all(&video.mp4).expect("write mp4");
    file
}

/// What ffprobe says about the video stream, after decoding every frame.
#[derive(Debug)]
pub struct Probe {
    pub codec: String,
    pub pix_fmt: String,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub frame_rate: String,
    pub duration: f64,
    /// Everything ffprobe printed at `-v warning`: must be empty for a clean file.
    pub complaints: String,
}

pub fn probe(video: &Rendered) -> Probe {
    let file = mp4_file(video);
    let out = Command::new("ffprobe")
        .args(["-v", "warning", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,pix_fmt,width,height,nb_read_frames,r_frame_rate:format=duration",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(file.path())
        .output()
        .expect("ffprobe runs (install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .unwrap_or_else(|| panic!("ffprobe printed no {name}: {text}"))
            .to_string()
    };
    Probe {
        codec: field("codec_name"),
        pix_fmt: field("pix_fmt"),
        width: field("width").parse().expect("width"),
        height: field("height").parse().expect("height"),
        frames: field("nb_read_frames").parse().expect("frame count"),
        frame_rate: field("r_frame_rate"),
        duration: field("duration").parse().expect("duration"),
        complaints: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every frame of the video, decoded by ffmpeg to RGB.
pub fn decode(video: &Rendered) -> Vec<RgbImage> {
    let file = mp4_file(video);
    let out = Command::new("ffmpeg")
        .args(["-v", "warning", "-i"])
        .arg(file.path())
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs (install ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffmpeg complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = (video.width * video.height * 3) as usize;
    assert_eq!(out.stdout.len() % size, 0, "whole frames");
    out.stdout
        .chunks_exact(size)
        .map(|f| RgbImage::from_raw(video.width, video.height, f.to_vec()).expect("frame"))
        .collect()
}

/// Per-channel mean absolute difference over the pixels for which `keep(x, y)` holds.
pub fn difference_where(a: &RgbImage, b: &RgbImage, keep: impl Fn(u32, u32) -> bool) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let (mut sum, mut count) = (0u64, 0u64);
    for (x, y, pa) in a.enumerate_pixels() {
        if keep(x, y) {
            let pb = b.get_pixel(x, y);
            sum += (0..3)
                .map(|c| u64::from(pa[c].abs_diff(pb[c])))
                .sum::<u64>();
            count += 3;
        }
    }
    sum as f64 / count.max(1) as f64
}

pub fn difference(a: &RgbImage, b: &RgbImage) -> f64 {
    difference_where(a, b, |_, _| true)
}

/// A photo-like test picture: smooth gradients, a soft glow and some hard-edged bands.
pub fn picture(width: u32, height: u32, seed: u32) -> RgbImage {
    let centre = 0.2 + 0.1 * f64::from(seed % 6);
    RgbImage::from_fn(width, height, |x, y| {
        let (u, v) = (
            f64::from(x) / f64::from(width),
            f64::from(y) / f64::from(height),
        );
        let glow = (1.0 - 3.0 * ((u - centre).powi(2) + (v - 0.5).powi(2)).sqrt()).max(0.0);
        let band = if (x / (width / 6).max(1) + seed).is_multiple_of(2) {
            30.0
        } else {
            0.0
        };
        image::Rgb([
            (40.0 + 150.0 * u + 60.0 * glow) as u8,
            (30.0 + 120.0 * v + band) as u8,
            (200.0 - 120.0 * u * v + 50.0 * glow) as u8,
        ])
    })
}

/// The top-level boxes of an MP4: (four-character type, offset).
pub fn top_level_boxes(mp4: &[u8]) -> Vec<(String, usize)> {
    let mut boxes = Vec::new();
    let mut at = 0;
    while at + 8 <= mp4.len() {
        let size = u32::from_be_bytes(mp4[at..at + 4].try_into().unwrap()) as usize;
        let size = match size {
            1 => u64::from_be_bytes(mp4[at + 8..at + 16].try_into().unwrap()) as usize,
            0 => mp4.len() - at,
            n => n,
        };
        boxes.push((
            String::from_utf8_lossy(&mp4[at + 4..at + 8]).into_owned(),
            at,
        ));
        assert!(size >= 8, "box size");
        at += size;
    }
    assert_eq!(at, mp4.len(), "boxes tile the file");
    boxes
}
