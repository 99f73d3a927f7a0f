//! Media: keyframe intake (decode, validate, fetch safely) and the sandbox renderer.

pub mod intake;
pub mod render;
