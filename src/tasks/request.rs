//! Parsing create and extend bodies (API.md §3.1, §3.2) into validated requests.
//!
//! Bodies are read as loose JSON so that every error can name the field and the
//! allowed values; unknown fields are ignored, and an empty string means "not given".

use serde_json::{Map, Value};

use super::model::{AspectRatio, ClipDuration, Idempotency, Model, Resolution, Surface};

/// The longest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 5000;

/// A create or extend request whose every field is valid; images are still raw inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub prompt: String,
    pub image_url: Option<String>,
    pub image_end_url: Option<String>,
    pub aspect_ratio: AspectRatio,
    pub expand_prompt: bool,
    pub looped: bool,
    pub resolution: Resolution,
    pub duration: ClipDuration,
    pub model: Model,
    pub notify_hook: Option<String>,
    /// The surface the request came in on (names fields in errors, shapes webhooks).
    pub surface: Surface,
    /// The Dream Machine request as sent, for that surface's `request` echo.
    pub request_echo: Option<serde_json::Value>,
    /// Set from the `Idempotency-Key` header by the HTTP layer.
    pub idempotency: Option<Idempotency>,
}

/// A request that breaks the contract; the message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

/// Which body is being parsed: extend takes its start frame from the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Create,
    Extend,
}

/// Parses a request body.
pub fn parse_generation(body: &[u8], kind: RequestKind) -> Result<GenerationRequest, InvalidRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(InvalidRequest("request body must be a JSON object".into()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InvalidRequest(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(InvalidRequest("request body must be a JSON object".into()));
    };
    let mut f = Fields(&mut fields);

    let prompt = f.string("user_prompt")?.unwrap_or_default();
    // Images can be megabytes of base64: moved out, not copied.
    let image_url = f.take_string("image_url")?;
    let image_end_url = f.take_string("image_end_url")?;
    let looped = f.boolean("loop")?.unwrap_or(false);

    if prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(InvalidRequest(format!(
            "user_prompt must be at most {MAX_PROMPT_CHARS} characters"
        )));
    }
    match kind {
        RequestKind::Create if image_url.is_none() && prompt.trim().is_empty() => {
            return Err(InvalidRequest(
                "user_prompt is required when no image_url is given".into(),
            ))
        }
        RequestKind::Extend if image_url.is_some() => {
            return Err(InvalidRequest(
                "image_url must be empty on extend: the parent's last frame is the start frame".into(),
            ))
        }
        _ => {}
    }
    let notify_hook = f.string("notify_hook")?;
    if let Some(hook) = &notify_hook {
        match url::Url::parse(hook) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => return Err(InvalidRequest("notify_hook must be an http(s) URL".into())),
        }
    }
    if looped && image_end_url.is_some() {
        return Err(InvalidRequest("loop cannot be combined with image_end_url".into()));
    }

    Ok(GenerationRequest {
        prompt,
        image_url,
        image_end_url,
        aspect_ratio: f.choice("aspect_ratio", AspectRatio::parse, AspectRatio::ALLOWED)?
            .unwrap_or(AspectRatio::Wide),
        expand_prompt: f.boolean("expand_prompt")?.unwrap_or(false),
        looped,
        resolution: f.choice("resolution", Resolution::parse, Resolution::ALLOWED)?
            .unwrap_or(Resolution::P720),
        duration: f.choice("duration", ClipDuration::parse, ClipDuration::ALLOWED)?
            .unwrap_or(ClipDuration::Five),
        model: f.choice("model_name", Model::parse, Model::ALLOWED)?.unwrap_or(Model::RayV2),
        notify_hook,
        surface: Surface::Reseller,
        request_echo: None,
        idempotency: None,
    })
}

/// Typed access to the body's fields, with field-named errors.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    /// Like [`Fields::string`], moving the value out of the body.
    fn take_string(&mut self, name: &str) -> Result<Option<String>, InvalidRequest> {
        self.string(name)?;
        match self.0.remove(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    /// A string field; absent, `null` and `""` all mean "not given".
    fn string(&self, name: &str) -> Result<Option<String>, InvalidRequest> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(InvalidRequest(format!(
                "{name} must be a string, got {}",
                type_name(other)
            ))),
        }
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, InvalidRequest> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(InvalidRequest(format!(
                "{name} must be a boolean (true or false), got {}",
                type_name(other)
            ))),
        }
    }

    fn choice<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<Option<T>, InvalidRequest> {
        let invalid = || InvalidRequest(format!("{name} must be one of {allowed}"));
        match self.string(name) {
            Ok(None) => Ok(None),
            Ok(Some(s)) => parse(&s).map(Some).ok_or_else(invalid),
            Err(_) => Err(invalid()),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: &str) -> Result<GenerationRequest, InvalidRequest> {
        parse_generation(body.as_bytes(), RequestKind::Create)
    }

    #[test]
    fn defaults_fill_every_missing_field() {
        let r = create(r#"{"user_prompt":"a cat"}"#).unwrap();
        assert_eq!(r.aspect_ratio, AspectRatio::Wide);
        assert_eq!(r.resolution, Resolution::P720);
        assert_eq!(r.duration, ClipDuration::Five);
        assert_eq!(r.model, Model::RayV2);
        assert!(!r.looped && !r.expand_prompt);
        assert_eq!(r.image_url, None);
    }

    #[test]
    fn errors_name_the_field_and_the_allowed_values() {
        let e = create(r#"{"user_prompt":"x","duration":"7s"}"#).unwrap_err();
        assert_eq!(e.0, "duration must be one of 5s, 10s");
        let e = create(r#"{"user_prompt":"x","loop":"yes"}"#).unwrap_err();
        assert!(e.0.starts_with("loop must be a boolean"), "{}", e.0);
        let e = create(r#"{"user_prompt":""}"#).unwrap_err();
        assert!(e.0.contains("user_prompt is required"));
        assert!(create("[1]").unwrap_err().0.contains("JSON object"));
        assert!(create("{").unwrap_err().0.contains("not valid JSON"));
        let e = create(r#"{"user_prompt":"x","notify_hook":"ftp://h/x"}"#).unwrap_err();
        assert_eq!(e.0, "notify_hook must be an http(s) URL");
    }

    #[test]
    fn extend_refuses_a_start_image() {
        let e = parse_generation(br#"{"image_url":"http://x/y.png"}"#, RequestKind::Extend).unwrap_err();
        assert!(e.0.contains("image_url must be empty"));
        assert!(parse_generation(b"{}", RequestKind::Extend).is_ok());
    }
}
