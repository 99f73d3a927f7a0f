//! Test data and small readers: tiny images, a PNG whose header lies, an MP4 `mvhd`
//! reader, RFC 3339 checks, link query editing, and a tiny image server.

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// A small gradient picture, encoded in `format`.
pub fn picture(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, format).expect("encoding a picture");
    out.into_inner()
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    picture(width, height, image::ImageFormat::Png)
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    picture(width, height, image::ImageFormat::Jpeg)
}

/// A PNG of pseudo-random pixels, which does not compress: about `3 × w × h` bytes.
pub fn noisy_png(width: u32, height: u32) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    let img = image::RgbImage::from_fn(width, height, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        };
        image::Rgb([next(), next(), next()])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Png).expect("png");
    out.into_inner()
}

/// A valid small PNG whose IHDR declares `width × height` (with a correct CRC), as a
/// decompression bomb would.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(4, 4);
    // Signature (8), then the IHDR chunk: length (4), "IHDR" (4), data (13), CRC (4).
    assert_eq!(&bytes[12..16], b"IHDR");
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// CRC-32 (IEEE), as PNG chunks use it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", base64(bytes))
}

/// The duration of an MP4, from the `mvhd` box inside `moov`, in seconds.
pub fn mp4_duration_secs(mp4: &[u8]) -> f64 {
    let moov = find_box(mp4, b"moov").expect("the MP4 has a moov box");
    let mvhd = find_box(moov, b"mvhd").expect("moov has an mvhd box");
    let (timescale, duration) = match mvhd[0] {
        0 => (
            u32::from_be_bytes(mvhd[12..16].try_into().unwrap()) as u64,
            u32::from_be_bytes(mvhd[16..20].try_into().unwrap()) as u64,
        ),
        1 => (
            u32::from_be_bytes(mvhd[20..24].try_into().unwrap()) as u64,
            u64::from_be_bytes(mvhd[24..32].try_into().unwrap()),
        ),
        v => panic!("unknown mvhd version {v}"),
    };
    assert!(timescale > 0, "mvhd timescale is 0");
    duration as f64 / timescale as f64
}

/// The payload of the first box of this type among `data`'s top-level boxes.
fn find_box<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let (header, size) = match size32 {
            0 => (8, data.len() - pos),
            1 => (16, u64::from_be_bytes(data.get(pos + 8..pos + 16)?.try_into().unwrap()) as usize),
            n => (8, n),
        };
        if size < header || pos + size > data.len() {
            return None;
        }
        if &data[pos + 4..pos + 8] == kind {
            return Some(&data[pos + header..pos + size]);
        }
        pos += size;
    }
    None
}

/// Asserts `YYYY-MM-DDTHH:MM:SS.ffffffZ` and returns it as Unix seconds.
#[track_caller]
pub fn assert_rfc3339_micros(s: &str) -> i64 {
    let b = s.as_bytes();
    let shape_ok = b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape_ok, "created_at must be RFC 3339 UTC with 6 fractional digits and Z: {s:?}");
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    assert!((1..=12).contains(&m) && (1..=31).contains(&d), "not a date: {s}");
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The value of a query parameter of a link.
pub fn query_param(link: &str, name: &str) -> Option<String> {
    let query = link.split_once('?')?.1;
    query.split('&').find_map(|kv| match kv.split_once('=') {
        Some((k, v)) if k == name => Some(v.to_string()),
        _ => None,
    })
}

/// The link with one query parameter replaced (`None` removes it).
pub fn with_param(link: &str, name: &str, value: Option<&str>) -> String {
    let (base, query) = link.split_once('?').expect("a link with a query");
    let mut parts: Vec<String> = query
        .split('&')
        .filter_map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == name => value.map(|v| format!("{k}={v}")),
            _ => Some(kv.to_string()),
        })
        .collect();
    if value.is_some() && !parts.iter().any(|p| p.starts_with(&format!("{name}="))) {
        parts.push(format!("{name}={}", value.unwrap()));
    }
    format!("{base}?{}", parts.join("&"))
}

/// A tiny HTTP server for image fetches, on the current runtime.
pub struct FileServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl FileServer {
    /// `http://ADDR/path`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests reached this server.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Serves fixed files on `ip` (port chosen by the OS). Each file is `(path, content
/// type, body)`; each redirect `(path, location)` answers 302. Other paths answer 404.
pub async fn serve_files(ip: &str, files: Vec<(&'static str, &'static str, Vec<u8>)>, redirects: Vec<(&'static str, String)>) -> FileServer {
    use axum::http::header;
    use axum::response::IntoResponse;
    let hits = Arc::new(AtomicUsize::new(0));
    let mut router = axum::Router::new();
    for (path, mime, body) in files {
        let hits = hits.clone();
        router = router.route(
            path,
            axum::routing::get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, mime)], body).into_response() }
            }),
        );
    }
    for (path, to) in redirects {
        let hits = hits.clone();
        router = router.route(
            path,
            axum::routing::get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                let to = to.clone();
                async move { (axum::http::StatusCode::FOUND, [(header::LOCATION, to)]).into_response() }
            }),
        );
    }
    let counted = hits.clone();
    router = router.fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { axum::http::StatusCode::NOT_FOUND }
    });
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await.unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.expect("test file server") });
    FileServer { addr, hits }
}

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn the_lying_png_declares_what_was_asked_and_image_reads_it() {
    let bytes = png_declaring(100_000, 100_000);
    let dims = image::ImageReader::with_format(Cursor::new(&bytes), image::ImageFormat::Png).into_dimensions().unwrap();
    assert_eq!(dims, (100_000, 100_000));
}

#[test]
fn timestamps_convert_to_unix_seconds() {
    assert_eq!(assert_rfc3339_micros("2024-06-24T03:40:47.505420Z"), 1_719_200_447);
}

#[test]
fn link_params_can_be_read_and_replaced() {
    let l = "http://h/files/a.mp4?exp=10&dl=1&sig=ab";
    assert_eq!(query_param(l, "exp").as_deref(), Some("10"));
    assert_eq!(with_param(l, "sig", Some("cd")), "http://h/files/a.mp4?exp=10&dl=1&sig=cd");
    assert_eq!(with_param(l, "sig", None), "http://h/files/a.mp4?exp=10&dl=1");
}
