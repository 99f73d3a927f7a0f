//! Whole-frame picture operations: fitting keyframe images to the frame, slow pan/zoom views
//! of a picture, and cross-fades. Integer arithmetic throughout, so results are exact and the
//! same on every machine (a full view is a copy, a full-weight fade is a copy).

use image::imageops::{self, FilterType};
use image::RgbImage;

/// `img` scaled to cover a `width`×`height` frame, centred, the overflow cropped away.
pub fn cover(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (iw, ih) = (u64::from(img.width()), u64::from(img.height()));
    let (w, h) = (u64::from(width), u64::from(height));
    // The largest centred crop with the frame's aspect ratio, then one resample.
    let (cw, ch) = if iw * h > ih * w {
        (((ih * w + h / 2) / h).clamp(1, iw), ih)
    } else {
        (iw, ((iw * h + w / 2) / w).clamp(1, ih))
    };
    let (cw, ch) = (cw as u32, ch as u32);
    let crop = imageops::crop_imm(img, (img.width() - cw) / 2, (img.height() - ch) / 2, cw, ch);
    if (cw, ch) == (width, height) {
        return crop.to_image();
    }
    imageops::resize(&*crop, width, height, FilterType::Triangle)
}

/// `img` shrunk to `width`×`height` (no larger than it) by averaging the source pixels that
/// fall into each output pixel: cheap, and free of aliasing.
pub fn shrink(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = img.dimensions();
    let spans = |from: u32, to: u32| -> Vec<(usize, usize)> {
        (0..u64::from(to))
            .map(|i| {
                let a = (i * u64::from(from) / u64::from(to)) as usize;
                let b = ((i + 1) * u64::from(from) / u64::from(to)) as usize;
                (a, b.max(a + 1))
            })
            .collect()
    };
    let (columns, rows) = (spans(sw, width), spans(sh, height));
    let src: &[u8] = img;
    let stride = sw as usize * 3;
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    let mut sums = vec![0u32; width as usize * 3];
    for &(y0, y1) in &rows {
        sums.fill(0);
        for row in y0..y1 {
            let line = &src[row * stride..][..stride];
            for (o, &(x0, x1)) in columns.iter().enumerate() {
                for x in x0..x1 {
                    sums[3 * o] += u32::from(line[3 * x]);
                    sums[3 * o + 1] += u32::from(line[3 * x + 1]);
                    sums[3 * o + 2] += u32::from(line[3 * x + 2]);
                }
            }
        }
        for (o, &(x0, x1)) in columns.iter().enumerate() {
            let n = ((x1 - x0) * (y1 - y0)) as u32;
            out.extend((0..3).map(|c| ((sums[3 * o + c] + n / 2) / n) as u8));
        }
    }
    RgbImage::from_raw(width, height, out).expect("width × height pixels")
}

/// A window onto a picture of the frame's size: `zoom` ≥ 1 magnifies, (`cx`, `cy`) is the
/// window's centre as fractions of the picture (the window is kept inside the picture).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub zoom: f64,
    pub cx: f64,
    pub cy: f64,
}

impl View {
    /// The whole picture, unmoved.
    pub const FULL: View = View {
        zoom: 1.0,
        cx: 0.5,
        cy: 0.5,
    };
}

/// Renders `view` of `src` into `out` (both the frame's size) with bilinear sampling.
pub fn render_view(src: &RgbImage, view: View, out: &mut RgbImage) {
    debug_assert_eq!(src.dimensions(), out.dimensions());
    if view.zoom <= 1.0 {
        out.copy_from_slice(src);
        return;
    }
    let (w, h) = src.dimensions();
    let columns = taps(w, view.zoom, view.cx);
    let rows = taps(h, view.zoom, view.cy);
    let stride = w as usize * 3;
    let src: &[u8] = src;
    // Only the source columns under the window are read: bytes [first, last).
    let first = columns[0].0 * 3;
    let last = (columns[columns.len() - 1].0 * 3 + 6).min(stride);
    // Each output row: blend the two source rows vertically (kept with 8 fraction bits), then
    // each output pixel horizontally: the same sums as a direct 2×2 blend, but the vertical
    // pass runs over contiguous bytes. One spare pixel at the end stands in for the right
    // neighbour of the last column, which always has weight 0.
    // (u16 suffices: at most 255 × 256, and SSE2 multiplies u16 lanes natively.)
    let mut line = vec![0u16; last - first + 3];
    for (out_row, &(y0, wy)) in out.chunks_exact_mut(stride).zip(&rows) {
        let y1 = (y0 + 1).min(h as usize - 1);
        let top = &src[y0 * stride..][first..last];
        let bottom = &src[y1 * stride..][first..last];
        let (wt, wb) = ((256 - wy) as u16, wy as u16);
        for ((l, &t), &b) in line.iter_mut().zip(top).zip(bottom) {
            *l = u16::from(t) * wt + u16::from(b) * wb;
        }
        for (px, &(x0, wx)) in out_row.chunks_exact_mut(3).zip(&columns) {
            let pair = &line[x0 * 3 - first..][..6];
            for c in 0..3 {
                let (l, r) = (u32::from(pair[c]), u32::from(pair[c + 3]));
                px[c] = ((l * (256 - wx) + r * wx + (1 << 15)) >> 16) as u8;
            }
        }
    }
}

/// For each output position along an axis of `len` pixels: the source pixel at or before it
/// and the weight of the next one, in 1/256 steps (0 on the last source pixel).
fn taps(len: u32, zoom: f64, centre: f64) -> Vec<(usize, u32)> {
    let len_f = f64::from(len);
    let window = len_f / zoom;
    let start = (centre * len_f - window / 2.0).clamp(0.0, len_f - window);
    (0..len)
        .map(|i| {
            let pos = start + (f64::from(i) + 0.5) * window / len_f - 0.5;
            let fixed = (pos.clamp(0.0, len_f - 1.0) * 256.0).round() as u32;
            ((fixed >> 8) as usize, fixed & 255)
        })
        .collect()
}

/// Fades `dst` towards `other` by `weight` (1/256 steps; 256 makes `dst` an exact copy).
pub fn mix(dst: &mut RgbImage, other: &RgbImage, weight: u32) {
    match weight {
        0 => {}
        256.. => dst.copy_from_slice(other),
        w => {
            let w = w as i32;
            for (d, &o) in dst.iter_mut().zip(other.iter()) {
                let (dv, ov) = (i32::from(*d), i32::from(o));
                *d = (dv + (((ov - dv) * w + 128) >> 8)) as u8;
            }
        }
    }
}

/// A fraction in [0, 1] as a weight for [`mix`].
pub fn weight(fraction: f64) -> u32 {
    (fraction.clamp(0.0, 1.0) * 256.0).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_scales_and_centre_crops() {
        // A wide image whose left and right thirds are red and blue, middle green.
        let img = RgbImage::from_fn(300, 100, |x, _| match x {
            0..100 => image::Rgb([255, 0, 0]),
            100..200 => image::Rgb([0, 255, 0]),
            _ => image::Rgb([0, 0, 255]),
        });
        let fitted = cover(&img, 50, 50);
        assert_eq!(fitted.dimensions(), (50, 50));
        assert_eq!(fitted.get_pixel(25, 25).0, [0, 255, 0]);
        assert_eq!(cover(&img, 300, 100), img);
    }

    #[test]
    fn a_full_view_and_a_full_fade_are_exact_copies() {
        let src = RgbImage::from_fn(64, 36, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 7]));
        let mut out = RgbImage::new(64, 36);
        render_view(&src, View::FULL, &mut out);
        assert_eq!(out, src);
        render_view(
            &src,
            View {
                zoom: 1.2,
                cx: 0.4,
                cy: 0.6,
            },
            &mut out,
        );
        assert_ne!(out, src);
        mix(&mut out, &src, weight(1.0));
        assert_eq!(out, src);
    }
}
