//! Moves the `moov` box in front of `mdat` ("faststart"), so that a player can start playing
//! (and a browser can seek) before the whole file has arrived.
//!
//! Moving `moov` forward by its own size shifts every sample in `mdat` by that much, so each
//! chunk offset (`stco`/`co64`) inside it is increased by the same amount. On the way, two
//! fields the `mp4` crate leaves at spec-violating defaults are set: `mvhd.next_track_ID` (it
//! writes 1, the id of the only track) and the `vmhd` flags (must be 1).

use super::RenderError;

/// Container boxes on the way from `moov` to the chunk-offset tables.
const CONTAINERS: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

/// A box inside a byte buffer: its four-character type and the range it covers.
#[derive(Debug, Clone, Copy)]
pub struct BoxSpan {
    pub kind: [u8; 4],
    pub start: usize,
    pub header: usize,
    pub end: usize,
}

/// The boxes laid one after another in `data[from..to]`.
pub fn boxes(data: &[u8], from: usize, to: usize) -> Result<Vec<BoxSpan>, RenderError> {
    let bad = |why: &str| RenderError::Mux(format!("malformed MP4 at byte {from}: {why}"));
    let mut spans = Vec::new();
    let mut at = from;
    while at < to {
        let field = |o: usize, n: usize| {
            data.get(at + o..at + o + n)
                .ok_or_else(|| bad("truncated box header"))
        };
        let size32 = u32::from_be_bytes(field(0, 4)?.try_into().expect("4 bytes"));
        let kind: [u8; 4] = field(4, 4)?.try_into().expect("4 bytes");
        let (size, header) = match size32 {
            0 => (to - at, 8),
            1 => (
                u64::from_be_bytes(field(8, 8)?.try_into().expect("8 bytes")) as usize,
                16,
            ),
            n => (n as usize, 8),
        };
        if size < header || at + size > to {
            return Err(bad("box size out of range"));
        }
        spans.push(BoxSpan {
            kind,
            start: at,
            header,
            end: at + size,
        });
        at += size;
    }
    Ok(spans)
}

/// Rewrites `ftyp, mdat, moov` (as the `mp4` crate writes it) into `ftyp, moov, mdat`.
pub fn faststart(file: &[u8]) -> Result<Vec<u8>, RenderError> {
    let top = boxes(file, 0, file.len())?;
    let moov = top
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or_else(|| RenderError::Mux("no moov box".into()))?;
    let mdat_start = top
        .iter()
        .find(|b| &b.kind == b"mdat")
        .map(|b| b.start)
        .ok_or_else(|| RenderError::Mux("no mdat box".into()))?;
    if moov.start < mdat_start {
        return Ok(file.to_vec());
    }

    let mut moved = file[moov.start..moov.end].to_vec();
    let shift = moved.len() as u64;
    fix_moov(&mut moved, 0, shift)?;

    let mut out = Vec::with_capacity(file.len());
    for b in &top {
        if b.start == mdat_start {
            out.extend_from_slice(&moved);
        }
        if b.start != moov.start {
            out.extend_from_slice(&file[b.start..b.end]);
        }
    }
    Ok(out)
}

/// Adds `shift` to every chunk offset in the box at `data[at..]` and the boxes it contains,
/// and fixes the `mvhd` and `vmhd` fields (see the module documentation).
fn fix_moov(data: &mut [u8], at: usize, shift: u64) -> Result<(), RenderError> {
    let span = boxes(data, at, data.len())?[0];
    let body = span.start + span.header;
    if CONTAINERS.contains(&&span.kind) {
        for child in boxes(data, body, span.end)? {
            fix_moov(&mut data[..span.end], child.start, shift)?;
        }
        return Ok(());
    }
    let wide = match &span.kind {
        b"stco" => false,
        b"co64" => true,
        // next_track_ID is the last field of mvhd: one past our single track.
        b"mvhd" if span.end >= body + 4 => {
            data[span.end - 4..span.end].copy_from_slice(&2u32.to_be_bytes());
            return Ok(());
        }
        // The flags are the low 24 bits of the first word.
        b"vmhd" if span.end >= body + 4 => {
            data[body + 3] = 1;
            return Ok(());
        }
        _ => return Ok(()),
    };
    // Full box: version and flags (4 bytes), entry count (4 bytes), then the offsets.
    let table = &mut data[body..span.end];
    let count = table
        .get(4..8)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize)
        .ok_or_else(|| RenderError::Mux("truncated chunk offset table".into()))?;
    let width = if wide { 8 } else { 4 };
    let entries = table
        .get_mut(8..8 + count * width)
        .ok_or_else(|| RenderError::Mux("truncated chunk offset table".into()))?;
    for entry in entries.chunks_exact_mut(width) {
        if wide {
            let v = u64::from_be_bytes(entry.try_into().expect("8 bytes")) + shift;
            entry.copy_from_slice(&v.to_be_bytes());
        } else {
            let v = u64::from(u32::from_be_bytes(entry.try_into().expect("4 bytes"))) + shift;
            let v =
                u32::try_from(v).map_err(|_| RenderError::Mux("file too large for stco".into()))?;
            entry.copy_from_slice(&v.to_be_bytes());
        }
    }
    Ok(())
}
