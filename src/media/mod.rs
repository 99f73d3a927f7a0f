//! Media: keyframe intake (decode, validate, fetch safely), the sandbox renderer, probing
//! downloaded videos, and the FFmpeg steps (watermark burn, joining an extension).

pub mod ffmpeg;
pub mod intake;
pub mod probe;
pub mod render;
