//! One spec's stretch of frames: how frame `i` of it is composed (before the watermark).
//!
//! Frame `i` of `n` is at progress `u = i / (n - 1)`:
//! 1. the content: a pan/zoom over the start picture (a start image, or the parent's last
//!    frame, which then dissolves into this prompt's scene), or else the prompt's scene;
//! 2. the caption, faded in when the segment starts on a picture and out when it ends on one,
//!    so that pinned frames carry no caption;
//! 3. the dissolve into the end target (an end image, or the first frame for a loop), whose
//!    own pan/zoom comes to rest at `u = 1`, where the frame is exactly the target.

use image::RgbImage;

use super::picture::{self, View};
use super::scene::{smoothstep, Scene};
use super::text::{self, Overlay};
use super::{RenderSpec, FPS};

/// Frames over which a caption fades in or out next to a pinned frame.
const CAPTION_FADE_FRAMES: u32 = 12;
/// Caption backdrop darkening and glyph opacity at full strength (out of 256).
const CAPTION_BACKDROP: u32 = 150;
const CAPTION_INK: u32 = 256;

/// Where a segment must end up.
pub enum Target {
    /// This picture (already fitted to the frame).
    Image(RgbImage),
    /// The video's first frame (a loop).
    FirstFrame,
}

pub struct Segment {
    frames: u32,
    scene: Scene,
    caption: Option<Overlay>,
    /// The picture the segment starts on, fitted to the frame.
    start: Option<RgbImage>,
    /// Whether the start picture dissolves into the scene (extensions do, start images don't).
    dissolve_to_scene: bool,
    target: Option<Target>,
}

impl Segment {
    pub fn new(
        spec: &RenderSpec,
        width: u32,
        height: u32,
        start: Option<RgbImage>,
        extends: bool,
        target: Option<Target>,
    ) -> Self {
        Self {
            frames: spec.frames,
            scene: Scene::from_prompt(&spec.prompt),
            caption: text::caption(&spec.prompt, width, height),
            start,
            dissolve_to_scene: extends,
            target,
        }
    }

    /// Composes frame `i` into `out`; `first` is the video's first frame once it exists.
    pub fn draw(
        &self,
        i: u32,
        out: &mut RgbImage,
        scratch: &mut RgbImage,
        first: Option<&RgbImage>,
    ) {
        let n = self.frames;
        let u = if n > 1 {
            f64::from(i) / f64::from(n - 1)
        } else {
            0.0
        };
        let t = f64::from(i) / f64::from(FPS);

        match &self.start {
            Some(start) => {
                picture::render_view(start, self.scene.camera(smoothstep(u), false), out);
                if self.dissolve_to_scene {
                    self.scene.render(t, scratch);
                    picture::mix(out, scratch, picture::weight(smoothstep(u)));
                }
            }
            None => self.scene.render(t, out),
        }

        if let Some(caption) = &self.caption {
            let fade_in = if self.start.is_some() { fade(i) } else { 256 };
            let fade_out = if self.target.is_some() {
                fade(n - 1 - i)
            } else {
                256
            };
            let strength = fade_in.min(fade_out);
            caption.draw(
                out,
                CAPTION_BACKDROP * strength / 256,
                CAPTION_INK * strength / 256,
            );
        }

        let target = match &self.target {
            Some(Target::Image(img)) => Some(img),
            Some(Target::FirstFrame) => first,
            None => None,
        };
        if let Some(target) = target {
            let w = if i + 1 == n {
                256
            } else {
                picture::weight(smoothstep(u))
            };
            if w > 0 {
                let view = if w >= 256 {
                    View::FULL
                } else {
                    self.scene.camera(smoothstep(1.0 - u), true)
                };
                picture::render_view(target, view, scratch);
                picture::mix(out, scratch, w);
            }
        }
    }
}

/// Caption strength `frames` frames away from a pinned frame: 0 on it, full after the fade.
fn fade(frames: u32) -> u32 {
    (frames.min(CAPTION_FADE_FRAMES) * 256) / CAPTION_FADE_FRAMES
}
