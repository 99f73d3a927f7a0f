//! H.264 encoding (openh264) and MP4 muxing (the `mp4` crate), one frame at a time.
//!
//! The `mp4` crate writes `ftyp, mdat, moov`; [`faststart`] then moves `moov` in front of `mdat`
//! (shifting the chunk offsets) so that browsers can start playing before the whole file arrives.

use std::io::Cursor;

use image::RgbImage;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::faststart::faststart;
use super::{RenderError, FPS};

/// MP4 track timescale: 512 ticks per frame at 24 fps (the value ffmpeg picks for 24 fps).
const TIMESCALE: u32 = FPS * 512;
/// A keyframe every two seconds keeps seeking cheap.
const KEYFRAME_INTERVAL: u32 = FPS * 2;

/// Encodes RGB frames into an in-memory MP4; only the compressed output is kept in memory.
pub struct Mp4Encoder {
    width: u32,
    height: u32,
    encoder: Encoder,
    yuv: Yuv420,
    /// Created on the first frame, once the encoder has produced SPS/PPS.
    writer: Option<mp4::Mp4Writer<Cursor<Vec<u8>>>>,
    frames: u32,
    nal_scratch: Vec<u8>,
}

impl Mp4Encoder {
    pub fn new(width: u32, height: u32) -> Result<Self, RenderError> {
        // Constant quantizer (no rate control): the quality does not depend on what came
        // before, and openh264 stays quiet (it warns about rate control without frame skipping).
        // The bitrate only informs the level it signals: ~0.1 bit per pixel.
        let bitrate = (u64::from(width) * u64::from(height) * u64::from(FPS) / 10) as u32;
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(FPS as f32))
            .rate_control_mode(RateControlMode::Off)
            // Every frame must come out: a skipped frame would shorten the video.
            .skip_frames(false)
            .complexity(Complexity::Low)
            .intra_frame_period(IntraFramePeriod::from_num_frames(KEYFRAME_INTERVAL))
            // One thread: the bitstream must not depend on how many cores the host has.
            .num_threads(1)
            .vui(VuiConfig::bt601());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| RenderError::Encode(e.to_string()))?;
        Ok(Self {
            width,
            height,
            encoder,
            yuv: Yuv420::new(width as usize, height as usize),
            writer: None,
            frames: 0,
            nal_scratch: Vec::new(),
        })
    }

    /// Encodes one frame (which must have the encoder's dimensions) and appends it to the file.
    pub fn push(&mut self, frame: &RgbImage) -> Result<(), RenderError> {
        debug_assert_eq!(frame.dimensions(), (self.width, self.height));
        rgb_to_yuv420(frame, &mut self.yuv);
        let timestamp =
            openh264::Timestamp::from_millis(u64::from(self.frames) * 1000 / u64::from(FPS));
        let stream = self
            .encoder
            .encode_at(&self.yuv, timestamp)
            .map_err(|e| RenderError::Encode(e.to_string()))?;
        if matches!(stream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Err(RenderError::Encode(format!(
                "encoder dropped frame {}",
                self.frames
            )));
        }

        // openh264 emits Annex B (start codes); MP4 wants 4-byte length prefixes, with the
        // parameter sets in the sample description instead of the stream.
        let (mut sps, mut pps) = (None, None);
        self.nal_scratch.clear();
        for l in 0..stream.num_layers() {
            let Some(layer) = stream.layer(l) else {
                continue;
            };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n).map(strip_start_code) else {
                    continue;
                };
                match nal.first().map(|b| b & 0x1f) {
                    None => {}
                    Some(7) => sps = Some(nal.to_vec()),
                    Some(8) => pps = Some(nal.to_vec()),
                    Some(_) => {
                        self.nal_scratch
                            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        self.nal_scratch.extend_from_slice(nal);
                    }
                }
            }
        }
        let is_sync = stream.frame_type() == FrameType::IDR;

        if self.writer.is_none() {
            let (Some(sps), Some(pps)) = (sps, pps) else {
                return Err(RenderError::Encode("first frame carries no SPS/PPS".into()));
            };
            self.writer = Some(self.start_file(sps, pps)?);
        }
        let sample = mp4::Mp4Sample {
            start_time: u64::from(self.frames) * 512,
            duration: 512,
            rendering_offset: 0,
            is_sync,
            bytes: std::mem::take(&mut self.nal_scratch).into(),
        };
        let writer = self.writer.as_mut().expect("started above");
        writer.write_sample(1, &sample).map_err(mux_error)?;
        self.frames += 1;
        Ok(())
    }

    /// Closes the file and returns it with `moov` before `mdat`.
    pub fn finish(self) -> Result<Vec<u8>, RenderError> {
        let mut writer = self
            .writer
            .ok_or_else(|| RenderError::Encode("no frames were encoded".into()))?;
        writer.write_end().map_err(mux_error)?;
        faststart(&writer.into_writer().into_inner())
    }

    fn start_file(
        &self,
        sps: Vec<u8>,
        pps: Vec<u8>,
    ) -> Result<mp4::Mp4Writer<Cursor<Vec<u8>>>, RenderError> {
        let brand = |s: &str| s.parse::<mp4::FourCC>().expect("four ASCII characters");
        let config = mp4::Mp4Config {
            major_brand: brand("isom"),
            minor_version: 512,
            compatible_brands: ["isom", "iso2", "avc1", "mp41"].map(brand).to_vec(),
            // The track's timescale, so that the movie duration is exact.
            timescale: TIMESCALE,
        };
        let mut writer =
            mp4::Mp4Writer::write_start(Cursor::new(Vec::new()), &config).map_err(mux_error)?;
        let track = mp4::TrackConfig {
            track_type: mp4::TrackType::Video,
            timescale: TIMESCALE,
            language: "und".into(),
            media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                width: self.width as u16,
                height: self.height as u16,
                seq_param_set: sps,
                pic_param_set: pps,
            }),
        };
        writer.add_track(&track).map_err(mux_error)?;
        Ok(writer)
    }
}

fn mux_error(e: mp4::Error) -> RenderError {
    RenderError::Mux(e.to_string())
}

fn strip_start_code(nal: &[u8]) -> &[u8] {
    nal.strip_prefix(&[0, 0, 0, 1])
        .or_else(|| nal.strip_prefix(&[0, 0, 1]))
        .unwrap_or(nal)
}

/// BT.601 limited-range conversion in integer arithmetic (exact and identical on every CPU);
/// chroma is the average of each 2×2 block. The SPS says BT.601, and it is also what ffmpeg
/// assumes for untagged video. One pass over each pair of rows, 2×2 pixels at a time.
fn rgb_to_yuv420(frame: &RgbImage, yuv: &mut Yuv420) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let rgb: &[u8] = frame;
    let (y_plane, chroma) = yuv.data.split_at_mut(w * h);
    let (u_plane, v_plane) = chroma.split_at_mut(w * h / 4);
    let stride = w * 3;
    let luma = |p: &[u8]| {
        let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
        (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
    };
    for (((pair, y_pair), u_row), v_row) in rgb
        .chunks_exact(2 * stride)
        .zip(y_plane.chunks_exact_mut(2 * w))
        .zip(u_plane.chunks_exact_mut(w / 2))
        .zip(v_plane.chunks_exact_mut(w / 2))
    {
        let (top, bottom) = pair.split_at(stride);
        let (y_top, y_bottom) = y_pair.split_at_mut(w);
        for (((((a, b), yt), yb), u), v) in top
            .chunks_exact(6)
            .zip(bottom.chunks_exact(6))
            .zip(y_top.chunks_exact_mut(2))
            .zip(y_bottom.chunks_exact_mut(2))
            .zip(u_row.iter_mut())
            .zip(v_row.iter_mut())
        {
            yt[0] = luma(&a[..3]);
            yt[1] = luma(&a[3..]);
            yb[0] = luma(&b[..3]);
            yb[1] = luma(&b[3..]);
            let sum = |c: usize| {
                i32::from(a[c]) + i32::from(a[c + 3]) + i32::from(b[c]) + i32::from(b[c + 3])
            };
            let (r, g, bl) = (sum(0), sum(1), sum(2));
            *u = (((-38 * r - 74 * g + 112 * bl + 512) >> 10) + 128) as u8;
            *v = (((112 * r - 94 * g - 18 * bl + 512) >> 10) + 128) as u8;
        }
    }
}

/// A reusable I420 frame: the Y plane, then U, then V, without padding.
struct Yuv420 {
    data: Vec<u8>,
    width: usize,
    height: usize,
}

impl Yuv420 {
    fn new(width: usize, height: usize) -> Self {
        Self {
            data: vec![0; width * height * 3 / 2],
            width,
            height,
        }
    }
}

impl YUVSource for Yuv420 {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    fn u(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma..luma + luma / 4]
    }

    fn v(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma + luma / 4..]
    }
}
