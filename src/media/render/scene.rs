//! The procedural scene drawn for a prompt: a slowly flowing colour field (a "plasma" of three
//! travelling waves through a palette) with a few glowing orbs drifting across it.
//!
//! Everything about it (palette, wave frequencies and speeds, orb sizes and paths, the pan/zoom
//! of keyframe images) is drawn from the SHA-256 of the prompt, so a prompt always gives the
//! same video. The maths uses only basic IEEE operations (no libm), so the pixels are the same
//! on every platform.

use image::RgbImage;
use sha2::{Digest, Sha256};

use super::picture::View;

/// Everything that the prompt decides.
pub struct Scene {
    /// Indexed by a u8, so lookups need no bounds check.
    palette: [[u8; 3]; 256],
    /// Colour-field waves along x, along y and along the diagonal.
    waves: [Wave; 3],
    /// Palette turns per second (the colours cycle slowly).
    palette_drift: f64,
    orbs: Vec<Orb>,
    /// Pan/zoom applied to keyframe images: maximum zoom, and pan direction (in turns).
    zoom: f64,
    pan_turns: f64,
}

struct Wave {
    /// Cycles per short side of the frame.
    frequency: f64,
    /// Turns per second (signed).
    speed: f64,
    phase: f64,
}

struct Orb {
    colour: [u8; 3],
    /// Radius as a fraction of the short side.
    radius: f64,
    /// Lissajous path: turns per second and phases along x and y.
    speed: (f64, f64),
    phase: (f64, f64),
}

impl Scene {
    pub fn from_prompt(prompt: &str) -> Self {
        let mut rng = SplitMix(u64::from_le_bytes(
            Sha256::digest(prompt.as_bytes())[..8]
                .try_into()
                .expect("8 bytes"),
        ));
        let base_hue = rng.unit();
        let keys: Vec<[u8; 3]> = (0..4)
            .map(|k| {
                let hue = base_hue + [0.0, 0.08, 0.45, 0.6][k] + rng.range(-0.05, 0.05);
                let value = if k % 2 == 0 {
                    rng.range(0.18, 0.35)
                } else {
                    rng.range(0.7, 0.95)
                };
                hsv(hue, rng.range(0.45, 0.85), value)
            })
            .collect();
        let palette = std::array::from_fn(|i| {
            let pos = i as f64 / 64.0;
            let (k, f) = (pos as usize, smoothstep(pos.fract()));
            let (a, b) = (keys[k], keys[(k + 1) % 4]);
            [0, 1, 2]
                .map(|c| (f64::from(a[c]) + (f64::from(b[c]) - f64::from(a[c])) * f).round() as u8)
        });
        let mut wave = || Wave {
            frequency: rng.range(0.5, 1.6),
            speed: rng.range(0.03, 0.1) * if rng.unit() < 0.5 { -1.0 } else { 1.0 },
            phase: rng.unit(),
        };
        let waves = [wave(), wave(), wave()];
        let palette_drift = rng.range(-0.04, 0.04);
        let orbs = (0..3)
            .map(|_| Orb {
                colour: hsv(base_hue + rng.range(0.0, 1.0), rng.range(0.2, 0.6), 1.0),
                radius: rng.range(0.1, 0.22),
                speed: (rng.range(0.02, 0.06), rng.range(0.02, 0.06)),
                phase: (rng.unit(), rng.unit()),
            })
            .collect();
        Self {
            palette,
            waves,
            palette_drift,
            orbs,
            zoom: rng.range(0.06, 0.14),
            pan_turns: rng.unit(),
        }
    }

    /// The pan/zoom view of a keyframe image `progress` (0 = untouched, 1 = full move) along
    /// this prompt's camera path; `reverse` heads the other way.
    pub fn camera(&self, progress: f64, reverse: bool) -> View {
        let turns = self.pan_turns + if reverse { 0.5 } else { 0.0 };
        let pan = 0.04 * progress;
        View {
            zoom: 1.0 + self.zoom * progress,
            cx: 0.5 + pan * sin_turns(turns + 0.25),
            cy: 0.5 + pan * sin_turns(turns),
        }
    }

    /// Draws the scene at `t` seconds into `out`.
    pub fn render(&self, t: f64, out: &mut RgbImage) {
        let (w, h) = (out.width() as usize, out.height() as usize);
        let short = w.min(h) as f64;
        // Each wave contributes 0..=80, so the sum (0..=240) plus the drift indexes the palette.
        let table = |wave: &Wave, len: usize, step: f64| -> Vec<u8> {
            (0..len)
                .map(|i| {
                    let turns =
                        wave.frequency * i as f64 * step / short + wave.speed * t + wave.phase;
                    (40.0 * (1.0 + sin_turns(turns))).round() as u8
                })
                .collect()
        };
        let along_x = table(&self.waves[0], w, 1.0);
        let along_y = table(&self.waves[1], h, 1.0);
        let diagonal = table(&self.waves[2], w + h, std::f64::consts::FRAC_1_SQRT_2);
        let drift = ((self.palette_drift * t).rem_euclid(1.0) * 256.0) as u8;

        for (y, row) in out.chunks_exact_mut(w * 3).enumerate() {
            let row_base = along_y[y].wrapping_add(drift);
            for ((px, &a), &d) in row
                .chunks_exact_mut(3)
                .zip(&along_x)
                .zip(&diagonal[y..y + w])
            {
                px.copy_from_slice(
                    &self.palette[usize::from(row_base.wrapping_add(a).wrapping_add(d))],
                );
            }
        }
        for orb in &self.orbs {
            let cx = (0.5 + 0.35 * sin_turns(orb.speed.0 * t + orb.phase.0)) * w as f64;
            let cy = (0.5 + 0.3 * sin_turns(orb.speed.1 * t + orb.phase.1)) * h as f64;
            glow(out, (cx, cy), orb.radius * short, orb.colour);
        }
    }
}

/// Adds a soft round glow of `colour` centred at `centre`, fading out at `radius`.
fn glow(out: &mut RgbImage, centre: (f64, f64), radius: f64, colour: [u8; 3]) {
    let (w, h) = (out.width() as i64, out.height() as i64);
    let r = radius.max(1.0) as i64;
    let (cx, cy) = (centre.0 as i64, centre.1 as i64);
    let (x0, x1) = ((cx - r).max(0), (cx + r).min(w - 1));
    let (y0, y1) = ((cy - r).max(0), (cy + r).min(h - 1));
    if x0 > x1 || y0 > y1 {
        return;
    }
    let r2 = (r * r) as u64;
    // Intensity (1 - d²/r²)², 0..=200 out of 256, indexed by d²/r² in 1/256 steps.
    let falloff: Vec<u32> = (0..256u32)
        .map(|i| {
            let f = 1.0 - f64::from(i) / 256.0;
            (200.0 * f * f) as u32
        })
        .collect();
    let dx2: Vec<u64> = (x0..=x1).map(|x| ((x - cx) * (x - cx)) as u64).collect();
    let stride = w as usize * 3;
    let out: &mut [u8] = out;
    for y in y0..=y1 {
        let dy2 = ((y - cy) * (y - cy)) as u64;
        let row = &mut out[y as usize * stride..][x0 as usize * 3..(x1 as usize + 1) * 3];
        for (px, &dx) in row.chunks_exact_mut(3).zip(&dx2) {
            let d2 = dx + dy2;
            if d2 >= r2 {
                continue;
            }
            let k = falloff[(d2 * 256 / r2) as usize];
            for (c, &o) in px.iter_mut().zip(&colour) {
                *c = (u32::from(*c) + ((u32::from(o) * k) >> 8)).min(255) as u8;
            }
        }
    }
}

/// sin(2π·turns), by range reduction and a Taylor polynomial: only +, ×, floor, so it is
/// bit-identical everywhere (error < 1e-5, invisible at 8 bits).
pub fn sin_turns(turns: f64) -> f64 {
    let mut x = turns - turns.floor();
    if x >= 0.5 {
        x -= 1.0;
    }
    // Fold [-0.5, 0.5) onto [-0.25, 0.25] using sin(π - a) = sin(a).
    if x > 0.25 {
        x = 0.5 - x;
    } else if x < -0.25 {
        x = -0.5 - x;
    }
    let a = x * std::f64::consts::TAU;
    let a2 = a * a;
    a * (1.0
        - a2 / 6.0 * (1.0 - a2 / 20.0 * (1.0 - a2 / 42.0 * (1.0 - a2 / 72.0 * (1.0 - a2 / 110.0)))))
}

/// 3t² − 2t³: starts and ends at rest.
pub fn smoothstep(t: f64) -> f64 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn hsv(hue: f64, saturation: f64, value: f64) -> [u8; 3] {
    let h = (hue - hue.floor()) * 6.0;
    let sector = h.floor();
    let f = h - sector;
    let (p, q, t) = (
        value * (1.0 - saturation),
        value * (1.0 - saturation * f),
        value * (1.0 - saturation * (1.0 - f)),
    );
    let (r, g, b) = match sector as u32 {
        0 => (value, t, p),
        1 => (q, value, p),
        2 => (p, value, t),
        3 => (p, q, value),
        4 => (t, p, value),
        _ => (value, p, q),
    };
    [r, g, b].map(|c| (c * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// A tiny deterministic generator (SplitMix64) for drawing the scene's parameters.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_turns_matches_the_library_sine() {
        for i in -400..400 {
            let t = f64::from(i) / 97.0;
            assert!(
                (sin_turns(t) - (t * std::f64::consts::TAU).sin()).abs() < 1e-5,
                "at {t}"
            );
        }
    }

    #[test]
    fn different_prompts_paint_different_scenes() {
        let paint = |p: &str| {
            let mut img = RgbImage::new(64, 36);
            Scene::from_prompt(p).render(1.0, &mut img);
            img
        };
        assert_eq!(paint("a cat"), paint("a cat"));
        assert_ne!(paint("a cat"), paint("a dog"));
    }
}
