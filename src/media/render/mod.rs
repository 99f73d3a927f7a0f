// TEMPORARY SHIM (replaced by the real module)
pub struct RenderSpec { pub width: u32, pub height: u32, pub frames: u32, pub prompt: String,
    pub start_image: Option<image::RgbImage>, pub end_image: Option<image::RgbImage>,
    pub looped: bool, pub watermark: bool, pub parent: Option<Box<RenderSpec>> }
pub struct Rendered { pub mp4: Vec<u8>, pub thumbnail_jpeg: Vec<u8>, pub width: u32, pub height: u32, pub frames: u32, pub duration_secs: f64 }
#[derive(Debug, thiserror::Error)] #[error("x")] pub struct RenderError;
pub const FPS: u32 = 24;
pub fn render(_s: &RenderSpec) -> Result<Rendered, RenderError> { todo!() }
pub fn frame_size(_a: (u32, u32), _s: u32) -> (u32, u32) { todo!() }
