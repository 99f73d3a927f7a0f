//! The steps that need FFmpeg, run as a child process: burning the visible watermark onto
//! an upstream's clean video, joining an extension's new segment to its parent's footage,
//! and the thumbnail of a video openh264 cannot decode.
//!
//! Outputs are H.264 Constrained Baseline (yuv420p, `moov` first), so lumagate can probe
//! and thumbnail them itself and every browser plays them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::probe::{self, VideoInfo};
use super::render;

/// One FFmpeg run may take this long (a minute-long 1080p clip re-encodes in far less).
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// Frame rate of joined videos (the renderer's and Luma's).
const JOIN_FPS: u32 = 24;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FfmpegError(pub String);

/// Whether `ffmpeg` can be run, with its version line.
pub async fn version() -> Option<String> {
    let out = Command::new("ffmpeg").arg("-version").kill_on_drop(true).output().await.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("ffmpeg").to_string())
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    async fn new() -> Result<Scratch, FfmpegError> {
        let dir = std::env::temp_dir().join(format!("lumagate-ffmpeg-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::create_dir_all(&dir).await.map_err(|e| FfmpegError(format!("scratch folder: {e}")))?;
        Ok(Scratch(dir))
    }

    async fn file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, FfmpegError> {
        let path = self.0.join(name);
        tokio::fs::write(&path, bytes).await.map_err(|e| FfmpegError(format!("scratch file: {e}")))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// H.264 settings every output shares.
const ENCODE: &[&str] = &["-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "20", "-movflags", "+faststart"];

async fn run(args: &[&str], output: &Path) -> Result<Vec<u8>, FfmpegError> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]).args(args).arg(output).kill_on_drop(true);
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .map_err(|_| FfmpegError(format!("ffmpeg took longer than {} s", RUN_LIMIT.as_secs())))?
        .map_err(|e| FfmpegError(format!("ffmpeg could not be started (is it installed?): {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(FfmpegError(format!("ffmpeg failed ({}): {}", out.status, err.trim().chars().take(500).collect::<String>())));
    }
    tokio::fs::read(output).await.map_err(|e| FfmpegError(format!("ffmpeg output: {e}")))
}

/// Burns lumagate's visible watermark onto every frame, where the renderer draws it.
pub async fn burn_watermark(mp4: &[u8], info: VideoInfo) -> Result<Vec<u8>, FfmpegError> {
    let (x, y, png) = render::watermark_png(info.width, info.height).map_err(|e| FfmpegError(e.to_string()))?;
    let scratch = Scratch::new().await?;
    let input = scratch.file("in.mp4", mp4).await?;
    let mark = scratch.file("mark.png", &png).await?;
    let filter = format!("[0:v][1:v]overlay={x}:{y}:format=auto,format=yuv420p[v]");
    let (input, mark) = (input.to_string_lossy().into_owned(), mark.to_string_lossy().into_owned());
    let mut args = vec!["-i", &input, "-i", &mark, "-filter_complex", &filter, "-map", "[v]", "-map", "0:a?", "-c:a", "copy"];
    args.extend_from_slice(ENCODE);
    run(&args, &scratch.0.join("out.mp4")).await
}

/// The parent's footage followed by the new segment, at the parent's frame size.
pub async fn join(parent: &[u8], segment: &[u8], size: (u32, u32)) -> Result<Vec<u8>, FfmpegError> {
    let scratch = Scratch::new().await?;
    let a = scratch.file("a.mp4", parent).await?.to_string_lossy().into_owned();
    let b = scratch.file("b.mp4", segment).await?.to_string_lossy().into_owned();
    let (w, h) = size;
    let norm = format!("scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1,fps={JOIN_FPS},format=yuv420p");
    let filter = format!("[0:v]{norm}[a];[1:v]{norm}[b];[a][b]concat=n=2:v=1:a=0[v]");
    let mut args = vec!["-i", a.as_str(), "-i", b.as_str(), "-filter_complex", &filter, "-map", "[v]", "-an"];
    args.extend_from_slice(ENCODE);
    run(&args, &scratch.0.join("out.mp4")).await
}

/// A thumbnail through FFmpeg, for videos whose profile openh264 does not decode.
pub async fn thumbnail(mp4: &[u8]) -> Result<Vec<u8>, FfmpegError> {
    let scratch = Scratch::new().await?;
    let input = scratch.file("in.mp4", mp4).await?.to_string_lossy().into_owned();
    let png = run(&["-i", &input, "-frames:v", "1", "-f", "image2", "-c:v", "png"], &scratch.0.join("first.png")).await?;
    let frame = image::load_from_memory(&png).map_err(|e| FfmpegError(format!("ffmpeg's frame: {e}")))?.to_rgb8();
    probe::jpeg_thumbnail(&frame).map_err(|e| FfmpegError(e.to_string()))
}
