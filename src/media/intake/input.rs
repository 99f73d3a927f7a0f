//! Input parsing: an http(s) URL, a `data:...;base64,` URI or bare base64, and
//! base64 decoding with the size check done before any allocation.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;

use super::decode::clip;
use super::IntakeError;

/// What an input value is.
#[derive(Debug)]
pub(super) enum Input<'a> {
    /// An http or https URL, to be fetched.
    Url(url::Url),
    /// Base64 text, not yet checked; `bare` when it did not come in a data URI.
    Base64 { text: &'a str, bare: bool },
}

/// Classifies `input` (trimmed): a data URI, an http(s) URL, or bare base64.
pub(super) fn parse_input<'a>(field: &str, input: &'a str) -> Result<Input<'a>, IntakeError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(IntakeError::Empty {
            field: field.to_owned(),
        });
    }
    if input.len() >= 5 && input.as_bytes()[..5].eq_ignore_ascii_case(b"data:") {
        return parse_data_uri(field, &input[5..]).map(|text| Input::Base64 { text, bare: false });
    }
    if let Some(scheme) = scheme_of(input) {
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(IntakeError::UnsupportedScheme {
                field: field.to_owned(),
                scheme: clip(&scheme, 40),
            });
        }
        let url = url::Url::parse(input).map_err(|e| IntakeError::InvalidUrl {
            field: field.to_owned(),
            reason: e.to_string(),
        })?;
        return Ok(Input::Url(url));
    }
    Ok(Input::Base64 {
        text: input,
        bare: true,
    })
}

/// The scheme of something shaped like `scheme:...`. Base64 never contains `:`.
fn scheme_of(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// `rest` is what follows `data:`. Only base64 payloads are accepted; the declared
/// media type is not trusted (the content decides the format).
fn parse_data_uri<'a>(field: &str, rest: &'a str) -> Result<&'a str, IntakeError> {
    let err = |reason: &str| IntakeError::InvalidDataUri {
        field: field.to_owned(),
        reason: reason.to_owned(),
    };
    let comma = rest
        .find(',')
        .ok_or_else(|| err("no ',' before the data"))?;
    let header = &rest[..comma];
    if header.len() > 200 {
        return Err(err("the header before ',' is too long"));
    }
    // The media type (first part) is ignored on purpose: the content decides.
    let mut parts = header.split(';').skip(1);
    if !parts.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err(err("only ;base64, data URIs are accepted"));
    }
    Ok(&rest[comma + 1..])
}

const BASE64_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_allow_trailing_bits(true)
    .with_decode_padding_mode(DecodePaddingMode::RequireNone);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, BASE64_CONFIG);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, BASE64_CONFIG);

/// Decodes standard or URL-safe base64, padded or not, with ASCII whitespace anywhere.
/// The decoded length is computed from the text first, so an oversized payload is
/// refused without decoding or copying it.
pub(super) fn decode_base64(
    field: &str,
    text: &str,
    max_bytes: usize,
) -> Result<Bytes, IntakeError> {
    let bad = |reason: String| IntakeError::InvalidBase64 {
        field: field.to_owned(),
        reason,
    };
    let mut symbols = 0usize;
    let mut padding = 0usize;
    let mut whitespace = false;
    let (mut standard, mut url_safe) = (false, false);
    let mut invalid: Option<String> = None;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0c => whitespace = true,
            b'=' => padding += 1,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'-' | b'_' => {
                if padding > 0 && invalid.is_none() {
                    invalid = Some("'=' padding in the middle of the data".to_owned());
                }
                symbols += 1;
                standard |= b == b'+' || b == b'/';
                url_safe |= b == b'-' || b == b'_';
            }
            _ => {
                if invalid.is_none() {
                    let c = text[i..].chars().next().unwrap_or('?');
                    invalid = Some(format!("unexpected character {c:?} at position {i}"));
                }
            }
        }
    }
    let decoded_len = (symbols / 4) as u64 * 3 + [0, 0, 1, 2][symbols % 4];
    if decoded_len > max_bytes as u64 {
        return Err(IntakeError::TooLarge {
            field: field.to_owned(),
            size: decoded_len,
            limit: max_bytes,
        });
    }
    if let Some(reason) = invalid {
        return Err(bad(reason));
    }
    if symbols == 0 {
        return Err(IntakeError::EmptyImage {
            field: field.to_owned(),
        });
    }
    if padding > 2 {
        return Err(bad("too much '=' padding".to_owned()));
    }
    if symbols % 4 == 1 {
        return Err(bad(format!(
            "{symbols} base64 characters is not a possible length"
        )));
    }
    if standard && url_safe {
        return Err(bad(
            "mixes the standard (+/) and URL-safe (-_) alphabets".to_owned()
        ));
    }
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    let decoded = if whitespace || padding > 0 {
        let clean: Vec<u8> = text
            .bytes()
            .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c | b'='))
            .collect();
        engine.decode(clean)
    } else {
        engine.decode(text)
    };
    decoded.map(Bytes::from).map_err(|e| bad(e.to_string()))
}

/// Rewords a refusal of *bare* base64 input: the caller may not have meant base64 at
/// all (e.g. random text), so the message names the accepted forms.
pub(super) fn as_unrecognized(e: IntakeError) -> IntakeError {
    match e {
        IntakeError::InvalidBase64 { field, reason } => IntakeError::Unrecognized {
            field,
            reason: format!("not base64 either: {reason}"),
        },
        IntakeError::UnsupportedFormat { field, detected } => IntakeError::Unrecognized {
            field,
            reason: match detected {
                Some(what) => {
                    format!("decoded as base64 it is {what}, not a PNG, JPEG, WebP or GIF image")
                }
                None => "decoded as base64 it is not a PNG, JPEG, WebP or GIF image".to_owned(),
            },
        },
        other => other,
    }
}
