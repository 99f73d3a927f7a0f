//! Reading a downloaded MP4 in pure Rust: its frame size and duration (the `mp4` crate),
//! and a JPEG thumbnail of its first frame (openh264 decodes it, `image` encodes it).
//!
//! openh264 decodes the Constrained Baseline profile; for other profiles the thumbnail
//! comes from FFmpeg when it is installed (see [`super::ffmpeg`]).

use std::io::Cursor;

use image::RgbImage;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use openh264::OpenH264API;

/// Thumbnails are scaled so that their long side is at most this (as the renderer's are).
pub const THUMBNAIL_LONG_SIDE: u32 = 480;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("not a readable MP4 file: {0}")]
    NotMp4(String),
    #[error("the MP4 file has no H.264 video track")]
    NoVideo,
    #[error("the first frame could not be decoded: {0}")]
    Decode(String),
}

/// What the stored task reports about its video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    pub duration_secs: f64,
}

fn open(mp4: &[u8]) -> Result<(mp4::Mp4Reader<Cursor<&[u8]>>, u32), ProbeError> {
    let reader = mp4::Mp4Reader::read_header(Cursor::new(mp4), mp4.len() as u64).map_err(|e| ProbeError::NotMp4(e.to_string()))?;
    let track = reader
        .tracks()
        .values()
        .find(|t| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
        .map(|t| t.track_id())
        .ok_or(ProbeError::NoVideo)?;
    Ok((reader, track))
}

/// Width, height and duration of the first video track.
pub fn probe(mp4: &[u8]) -> Result<VideoInfo, ProbeError> {
    let (reader, id) = open(mp4)?;
    let track = &reader.tracks()[&id];
    let (width, height) = (u32::from(track.width()), u32::from(track.height()));
    if width == 0 || height == 0 {
        return Err(ProbeError::NotMp4("the video track has no frame size".into()));
    }
    let duration = track.duration().as_secs_f64();
    let duration = if duration > 0.0 { duration } else { reader.duration().as_secs_f64() };
    Ok(VideoInfo { width, height, duration_secs: (duration * 1000.0).round() / 1000.0 })
}

/// A JPEG of the first frame, long side at most [`THUMBNAIL_LONG_SIDE`].
pub fn thumbnail(mp4: &[u8]) -> Result<Vec<u8>, ProbeError> {
    let frame = first_frame(mp4)?;
    jpeg_thumbnail(&frame)
}

/// Scales a frame down for a thumbnail and encodes it as JPEG.
pub fn jpeg_thumbnail(frame: &RgbImage) -> Result<Vec<u8>, ProbeError> {
    let (w, h) = frame.dimensions();
    let scale = (f64::from(THUMBNAIL_LONG_SIDE) / f64::from(w.max(h))).min(1.0);
    let (tw, th) = (((f64::from(w) * scale).round() as u32).max(1), ((f64::from(h) * scale).round() as u32).max(1));
    let small = image::imageops::resize(frame, tw, th, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&small)
        .map_err(|e| ProbeError::Decode(format!("JPEG encoding failed: {e}")))?;
    Ok(out)
}

/// Decodes samples from the start until the decoder yields a picture.
fn first_frame(mp4: &[u8]) -> Result<RgbImage, ProbeError> {
    let (mut reader, id) = open(mp4)?;
    let track = &reader.tracks()[&id];
    let sps = track.sequence_parameter_set().map_err(|_| ProbeError::NoVideo)?.to_vec();
    let pps = track.picture_parameter_set().map_err(|_| ProbeError::NoVideo)?.to_vec();
    let samples = track.sample_count();
    let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), openh264::decoder::DecoderConfig::new()).map_err(|e| ProbeError::Decode(e.to_string()))?;
    let mut annexb = Vec::new();
    for nal in [&sps, &pps] {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(nal);
    }
    // A few samples are enough: the first is a keyframe in any file a player can start.
    for sample_id in 1..=samples.min(8) {
        let sample = reader.read_sample(id, sample_id).map_err(|e| ProbeError::NotMp4(e.to_string()))?;
        let Some(sample) = sample else { break };
        avcc_to_annexb(&sample.bytes, &mut annexb)?;
        if let Some(yuv) = decoder.decode(&annexb).map_err(|e| ProbeError::Decode(e.to_string()))? {
            return Ok(to_rgb(&yuv));
        }
        annexb.clear();
    }
    let remaining = decoder.flush_remaining().map_err(|e| ProbeError::Decode(e.to_string()))?;
    remaining.first().map(|yuv| to_rgb(yuv)).ok_or_else(|| ProbeError::Decode("no picture in the first samples".into()))
}

fn to_rgb(yuv: &openh264::decoder::DecodedYUV<'_>) -> RgbImage {
    let (w, h) = yuv.dimensions();
    let mut rgb = vec![0u8; w * h * 3];
    yuv.write_rgb8(&mut rgb);
    RgbImage::from_raw(w as u32, h as u32, rgb).expect("w*h*3 bytes")
}

/// MP4 samples hold length-prefixed (4-byte) NAL units; the decoder wants start codes.
fn avcc_to_annexb(sample: &[u8], out: &mut Vec<u8>) -> Result<(), ProbeError> {
    let mut rest = sample;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(ProbeError::NotMp4("a truncated NAL unit length".into()));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let nal = rest.get(4..4 + len).ok_or_else(|| ProbeError::NotMp4("a NAL unit runs past its sample".into()))?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        rest = &rest[4 + len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::render::{self, RenderSpec};

    #[test]
    fn a_rendered_video_probes_to_its_spec_and_thumbnails() {
        let spec = RenderSpec { width: 64, height: 36, frames: 12, prompt: "probe".into(), ..Default::default() };
        let rendered = render::render(&spec).unwrap();
        let info = probe(&rendered.mp4).unwrap();
        assert_eq!((info.width, info.height), (64, 36));
        assert!((info.duration_secs - 0.5).abs() < 0.05, "{info:?}");
        let jpeg = thumbnail(&rendered.mp4).unwrap();
        let img = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (64, 36));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(probe(b"not a video at all").is_err());
        assert!(thumbnail(&[0u8; 64]).is_err());
        let mut truncated = render::render(&RenderSpec { width: 32, height: 32, frames: 2, ..Default::default() }).unwrap().mp4;
        truncated.truncate(truncated.len() / 2);
        let _ = probe(&truncated);
        let _ = thumbnail(&truncated);
    }
}
