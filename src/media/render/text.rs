//! Bitmap text drawn with font8x8 glyphs scaled up: the prompt caption and the watermark.
//!
//! Text is laid out once into an [`Overlay`] (a mask over a rectangle) and then blended onto
//! each frame, which keeps the per-frame cost to one pass over the rectangle.

use font8x8::UnicodeFonts;
use image::RgbImage;

/// What the watermark says.
pub const WATERMARK_TEXT: &str = "lumagate";
/// Captions longer than this many lines are cut with "...".
const MAX_CAPTION_LINES: usize = 3;

const BACKDROP: u8 = 1;
const INK: u8 = 2;

/// A block of text over a dark backdrop, laid out at a fixed place in the frame.
pub struct Overlay {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    /// 0 (clear), BACKDROP or INK per pixel of the rectangle, row by row.
    mask: Vec<u8>,
}

impl Overlay {
    /// Blends the overlay onto `frame`: the backdrop darkens by `backdrop` and the glyphs go
    /// towards white by `ink` (both in 1/256 steps, 256 = opaque). Pixels outside the
    /// overlay's rectangle are never touched.
    pub fn draw(&self, frame: &mut RgbImage, backdrop: u32, ink: u32) {
        if backdrop == 0 && ink == 0 {
            return;
        }
        let stride = frame.width() as usize * 3;
        let (x0, w) = (self.x as usize * 3, self.width as usize);
        let rows = frame.chunks_exact_mut(stride).skip(self.y as usize);
        for (row, mask) in rows.zip(self.mask.chunks_exact(w)) {
            for (px, &m) in row[x0..x0 + w * 3].chunks_exact_mut(3).zip(mask) {
                match m {
                    BACKDROP => px
                        .iter_mut()
                        .for_each(|c| *c -= ((u32::from(*c) * backdrop) >> 8) as u8),
                    INK => px
                        .iter_mut()
                        .for_each(|c| *c += (((255 - u32::from(*c)) * ink) >> 8) as u8),
                    _ => {}
                }
            }
        }
    }

    /// Lays `lines` out at glyph scale `scale`, with `pad` pixels of backdrop around the text.
    fn layout(lines: &[Vec<char>], scale: u32, pad: u32, x: u32, y: u32) -> Self {
        let (cell, gap) = (8 * scale, 2 * scale);
        let cols = lines.iter().map(Vec::len).max().unwrap_or(0) as u32;
        let rows = lines.len() as u32;
        let (width, height) = (cols * cell + 2 * pad, rows * (cell + gap) - gap + 2 * pad);
        let mut mask = vec![BACKDROP; (width * height) as usize];
        for (r, line) in lines.iter().enumerate() {
            // Centre each line inside the block.
            let indent = (cols - line.len() as u32) * cell / 2;
            for (c, &ch) in line.iter().enumerate() {
                let (gx, gy) = (
                    pad + indent + c as u32 * cell,
                    pad + r as u32 * (cell + gap),
                );
                for (by, bits) in glyph(ch).iter().enumerate() {
                    for bx in (0..8).filter(|bx| bits & (1 << bx) != 0) {
                        for sy in 0..scale {
                            let row = (gy + by as u32 * scale + sy) * width;
                            let at = (row + gx + bx * scale) as usize;
                            mask[at..at + scale as usize].fill(INK);
                        }
                    }
                }
            }
        }
        Self {
            x,
            y,
            width,
            height,
            mask,
        }
    }
}

/// The glyph for `c`: from any font8x8 table that has it, else a '?'.
fn glyph(c: char) -> [u8; 8] {
    use font8x8::{BASIC_FONTS, BLOCK_FONTS, BOX_FONTS, GREEK_FONTS, HIRAGANA_FONTS, LATIN_FONTS};
    BASIC_FONTS
        .get(c)
        .or_else(|| LATIN_FONTS.get(c))
        .or_else(|| GREEK_FONTS.get(c))
        .or_else(|| BOX_FONTS.get(c))
        .or_else(|| BLOCK_FONTS.get(c))
        .or_else(|| HIRAGANA_FONTS.get(c))
        .or_else(|| BASIC_FONTS.get('?'))
        .expect("font8x8 has '?'")
}

/// Glyph scale and margin of the watermark for a frame of this size.
fn watermark_metrics(width: u32, height: u32) -> (u32, u32, u32) {
    let short = width.min(height);
    let scale = (short / 360).max(1);
    (scale, 3 * scale, (short / 40).max(2))
}

/// The rectangle `(x, y, w, h)` the watermark occupies: the bottom-right corner.
pub fn watermark_rect(width: u32, height: u32) -> (u32, u32, u32, u32) {
    let (scale, pad, margin) = watermark_metrics(width, height);
    let w = (WATERMARK_TEXT.len() as u32 * 8 * scale + 2 * pad).min(width);
    let h = (8 * scale + 2 * pad).min(height);
    let x = width.saturating_sub(w + margin);
    let y = height.saturating_sub(h + margin);
    (x, y, w, h)
}

/// The watermark overlay; it covers exactly [`watermark_rect`]. On frames too small for the
/// text it is a plain dark box.
pub fn watermark(width: u32, height: u32) -> Overlay {
    let (scale, pad, _) = watermark_metrics(width, height);
    let (x, y, w, h) = watermark_rect(width, height);
    let overlay = Overlay::layout(&[WATERMARK_TEXT.chars().collect()], scale, pad, x, y);
    if (overlay.width, overlay.height) == (w, h) {
        overlay
    } else {
        Overlay {
            x,
            y,
            width: w,
            height: h,
            mask: vec![BACKDROP; (w * h) as usize],
        }
    }
}

/// The prompt as a caption block, centred above the watermark's corner; `None` when there is
/// nothing to show or no room to show it.
pub fn caption(prompt: &str, width: u32, height: u32) -> Option<Overlay> {
    let short = width.min(height);
    let scale = (short / 240).max(1);
    let (cell, pad, margin) = (8 * scale, 2 * scale, (short / 24).max(2));
    let max_cols = (width.saturating_sub(2 * margin + 2 * pad) / cell) as usize;
    let lines = wrap(prompt, max_cols, MAX_CAPTION_LINES);
    if max_cols < 4 || lines.is_empty() {
        return None;
    }
    let probe = Overlay::layout(&lines, scale, pad, 0, 0);
    let (_, wm_y, _, _) = watermark_rect(width, height);
    let bottom = wm_y.checked_sub(margin / 2)?;
    let y = bottom.checked_sub(probe.height)?;
    let x = (width - probe.width) / 2;
    Some(Overlay { x, y, ..probe })
}

/// Greedy word wrap into at most `max_lines` lines of at most `cols` characters; words longer
/// than a line are split, and text that does not fit ends in "...".
fn wrap(text: &str, cols: usize, max_lines: usize) -> Vec<Vec<char>> {
    if cols == 0 {
        return Vec::new();
    }
    let mut lines: Vec<Vec<char>> = Vec::new();
    let mut current: Vec<char> = Vec::new();
    for word in text.split_whitespace() {
        let word: Vec<char> = word
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        for piece in word.chunks(cols) {
            let sep = usize::from(!current.is_empty());
            if current.len() + sep + piece.len() > cols {
                lines.push(std::mem::take(&mut current));
            } else if sep == 1 {
                current.push(' ');
            }
            current.extend_from_slice(piece);
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        let last = lines.last_mut().expect("max_lines > 0");
        last.truncate(cols.saturating_sub(3));
        while last.last() == Some(&' ') {
            last.pop();
        }
        last.extend("...".chars());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_breaks_at_spaces_splits_long_words_and_ellipsizes() {
        let s =
            |lines: Vec<Vec<char>>| lines.into_iter().map(String::from_iter).collect::<Vec<_>>();
        assert_eq!(s(wrap("a cat on  a mat", 8, 3)), ["a cat on", "a mat"]);
        assert_eq!(s(wrap("abcdefghij", 4, 3)), ["abcd", "efgh", "ij"]);
        assert_eq!(s(wrap("one two three four five", 5, 2)), ["one", "tw..."]);
        assert!(wrap("   ", 10, 3).is_empty());
    }

    #[test]
    fn any_text_can_be_captioned() {
        for prompt in [
            "héllo wörld",
            "🎉 日本語 ひらがな",
            "tab\tand\nnewline\u{7}",
            &"long ".repeat(500),
        ] {
            let caption = caption(prompt, 1280, 720).expect("a caption");
            assert!(caption.x + caption.width <= 1280 && caption.y + caption.height <= 720);
        }
        assert!(caption(" \n ", 1280, 720).is_none());
    }

    #[test]
    fn watermark_fills_its_rect_exactly() {
        for (w, h) in [(1280, 720), (1080, 1920), (2520, 1080), (64, 36)] {
            let (x, y, rw, rh) = watermark_rect(w, h);
            assert!(x + rw <= w && y + rh <= h);
            let overlay = watermark(w, h);
            assert_eq!(
                (overlay.x, overlay.y, overlay.width, overlay.height),
                (x, y, rw, rh)
            );
        }
    }
}
