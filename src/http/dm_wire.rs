//! Wire types of the Dream Machine surface (API.md §7, research/luma-official-api.md):
//! the create body parsed into an engine request, and the Generation object.
//!
//! Messages for invalid bodies are Luma's own where Luma documents one ("Prompt is
//! required", "Loop is not supported for end frame", ...), so that code written
//! against Luma sees what it expects.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::wire::rfc3339_micros;
use crate::blobs::{BlobStore, LinkKind};
use crate::tasks::model::{AspectRatio, ClipDuration, Model, Resolution, State, Surface, Task};
use crate::tasks::request::{GenerationRequest, MAX_PROMPT_CHARS};

/// Concept keys (camera moves) accepted in `concepts` and listed by
/// `GET /generations/concepts/list`. They are passed to the upstream with the request;
/// the sandbox provider ignores them.
pub const CONCEPTS: &[&str] = &[
    "aerial", "aerial_drone", "bolt_cam", "crane_down", "crane_up", "dolly_zoom", "elevator_doors", "eye_level",
    "ground_level", "handheld", "high_angle", "orbit_left", "orbit_right", "overhead", "pov", "pull_out", "push_in",
    "roll_left", "static", "tilt_down", "tilt_up", "tiny_planet", "truck_right", "zoom_out",
];

/// Luma's shortest prompt.
const MIN_PROMPT_CHARS: usize = 3;

/// Inline images longer than this are not echoed back in `request`.
const MAX_ECHOED_URL: usize = 2048;

/// A parsed create body: the engine request, and the generation to continue when a
/// `generation` keyframe asks for an extend.
#[derive(Debug)]
pub struct DmCreate {
    pub request: GenerationRequest,
    pub extend_from: Option<String>,
}

enum Frame {
    Image(String),
    Generation(String),
}

/// Parses a `POST /generations[/video]` body. Errors are 400 messages.
pub fn parse_create(body: &[u8]) -> Result<DmCreate, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let Value::Object(f) = value else { return Err("request body must be a JSON object".into()) };

    let model = match string(&f, "model")?.as_deref() {
        None => Model::RayV2,
        Some(name) => model_of(name).ok_or_else(|| format!("model must be one of {}", MODELS.join(", ")))?,
    };
    let prompt = string(&f, "prompt")?.unwrap_or_default();
    let looped = boolean(&f, "loop")?.unwrap_or(false);
    match string(&f, "generation_type")?.as_deref() {
        None | Some("video") => {}
        Some(_) => return Err("generation_type must be video on this path".into()),
    }
    let aspect_ratio = match string(&f, "aspect_ratio")? {
        None => AspectRatio::Wide,
        Some(s) => AspectRatio::parse(&s).ok_or_else(|| format!("aspect_ratio must be one of {}", AspectRatio::ALLOWED))?,
    };
    let resolution = match string(&f, "resolution")?.as_deref() {
        None => Resolution::P720,
        Some(s) => Resolution::parse(s).ok_or_else(|| format!("resolution {s:?} is not offered; use one of {}", Resolution::ALLOWED))?,
    };
    let duration = match string(&f, "duration")?.as_deref() {
        None | Some("5s") => ClipDuration::Five,
        // Luma's long clip is 9 s; lumagate's is 10 s.
        Some("9s") | Some("10s") => ClipDuration::Ten,
        Some(s) => return Err(format!("duration {s:?} is not offered; use 5s or 9s")),
    };
    let callback_url = string(&f, "callback_url")?;
    if let Some(hook) = &callback_url {
        match url::Url::parse(hook) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => return Err("callback_url must be an http(s) URL".into()),
        }
    }
    concepts(&f)?;

    let (frame0, frame1) = match f.get("keyframes") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(k)) => {
            let frames = (frame(k, "frame0")?, frame(k, "frame1")?);
            if frames.0.is_none() && frames.1.is_none() {
                return Err("No keyframes provided".into());
            }
            frames
        }
        Some(_) => return Err("keyframes must be an object with frame0 and/or frame1".into()),
    };
    if looped {
        let refused = match (&frame0, &frame1) {
            (_, None) => None,
            (None, Some(Frame::Image(_))) => Some("end frame"),
            (Some(Frame::Image(_)), Some(Frame::Image(_))) => Some("keyframes"),
            (Some(Frame::Generation(_)), Some(Frame::Image(_))) => Some("interpolate video to image"),
            (None, Some(Frame::Generation(_))) => Some("extend reverse"),
            (Some(Frame::Image(_)), Some(Frame::Generation(_))) => Some("interpolate image to video"),
            (Some(Frame::Generation(_)), Some(Frame::Generation(_))) => Some("interpolate between two videos"),
        };
        if let Some(what) = refused {
            return Err(format!("Loop is not supported for {what}"));
        }
    }
    let (image_url, image_end_url, extend_from) = match (frame0, frame1) {
        (_, Some(Frame::Generation(_))) => {
            return Err("a generation in frame1 (reverse extend, interpolation into a video) is not supported; \
                        put the generation in frame0 to extend it"
                .into())
        }
        (Some(Frame::Generation(id)), end) => (None, end.map(image_of), Some(id)),
        (Some(Frame::Image(start)), end) => (Some(start), end.map(image_of), None),
        (None, end) => (None, end.map(image_of), None),
    };
    let has_image = image_url.is_some() || image_end_url.is_some() || extend_from.is_some();
    if prompt.trim().is_empty() && !has_image {
        return Err("Prompt is required".into());
    }
    let length = prompt.chars().count();
    if length > 0 && length < MIN_PROMPT_CHARS {
        return Err(format!("Prompt is too short, minimum length is {MIN_PROMPT_CHARS} characters"));
    }
    if length > MAX_PROMPT_CHARS {
        return Err(format!("Prompt is too long, maximum length is {MAX_PROMPT_CHARS} characters"));
    }

    Ok(DmCreate {
        request: GenerationRequest {
            prompt,
            image_url,
            image_end_url,
            aspect_ratio,
            expand_prompt: false,
            looped,
            resolution,
            duration,
            model,
            notify_hook: callback_url,
            surface: Surface::DreamMachine,
            request_echo: Some(echo(f)),
            idempotency: None,
        },
        extend_from,
    })
}

const MODELS: &[&str] = &["ray-2", "ray-flash-2", "ray-1-6", "ray-3"];

/// Luma model names onto lumagate's models (Ray 2 Flash is served by Ray 2).
fn model_of(name: &str) -> Option<Model> {
    match name {
        "ray-2" | "ray-flash-2" => Some(Model::RayV2),
        "ray-1-6" => Some(Model::RayV1),
        "ray-3" => Some(Model::RayV3),
        _ => None,
    }
}

fn model_name(model: Model) -> &'static str {
    match model {
        Model::RayV1 => "ray-1-6",
        Model::RayV2 => "ray-2",
        Model::RayV3 => "ray-3",
    }
}

fn image_of(frame: Frame) -> String {
    match frame {
        Frame::Image(url) | Frame::Generation(url) => url,
    }
}

fn frame(k: &Map<String, Value>, name: &str) -> Result<Option<Frame>, String> {
    let Some(value) = k.get(name).filter(|v| !v.is_null()) else { return Ok(None) };
    let Value::Object(o) = value else {
        return Err(format!("keyframes.{name} must be an object with a type"));
    };
    let text = |field: &str| match o.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!("keyframes.{name}.{field} must be a non-empty string")),
    };
    match o.get("type").and_then(Value::as_str) {
        Some("image") => Ok(Some(Frame::Image(text("url")?))),
        Some("generation") => Ok(Some(Frame::Generation(text("id")?))),
        _ => Err(format!("keyframes.{name}.type must be image or generation")),
    }
}

fn concepts(f: &Map<String, Value>) -> Result<(), String> {
    let Some(value) = f.get("concepts").filter(|v| !v.is_null()) else { return Ok(()) };
    let Value::Array(items) = value else { return Err("concepts must be an array of {\"key\": ...} objects".into()) };
    for item in items {
        let key = item.get("key").and_then(Value::as_str).ok_or("concepts must be an array of {\"key\": ...} objects")?;
        if !CONCEPTS.contains(&key) {
            return Err(format!("unknown concept {key:?}; GET /generations/concepts/list lists them"));
        }
    }
    Ok(())
}

fn string(f: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match f.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

fn boolean(f: &Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    match f.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{name} must be a boolean")),
    }
}

/// The request as sent, with the known fields only and inline images elided.
fn echo(mut f: Map<String, Value>) -> Value {
    const KNOWN: &[&str] =
        &["model", "prompt", "aspect_ratio", "loop", "keyframes", "resolution", "duration", "concepts", "callback_url", "generation_type"];
    f.retain(|k, _| KNOWN.contains(&k.as_str()));
    f.insert("generation_type".into(), json!("video"));
    if let Some(Value::Object(frames)) = f.get_mut("keyframes") {
        for frame in frames.values_mut() {
            if let Some(Value::String(url)) = frame.get_mut("url") {
                if url.len() > MAX_ECHOED_URL {
                    *url = format!("(inline image, {} characters)", url.len());
                }
            }
        }
    }
    Value::Object(f)
}

/// The Generation object.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Generation)]
pub struct GenerationView {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(value_type = String, pattern = "^video$")]
    pub generation_type: &'static str,
    #[schema(value_type = String, pattern = "^(queued|dreaming|completed|failed)$")]
    pub state: &'static str,
    pub failure_reason: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Signed links, once completed.
    pub assets: Option<AssetsView>,
    #[schema(value_type = String)]
    pub model: &'static str,
    /// The request as sent (inline images elided).
    #[schema(value_type = Object)]
    pub request: Value,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GenerationAssets)]
pub struct AssetsView {
    /// The MP4.
    pub video: String,
    /// Its thumbnail (JPEG).
    pub image: String,
}

/// A page of generations.
#[derive(Debug, Serialize, ToSchema)]
pub struct GenerationList {
    pub generations: Vec<GenerationView>,
    /// Generations in this page.
    pub count: usize,
    pub has_more: bool,
    pub limit: u64,
    pub offset: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pong {
    /// Always `pong`.
    pub message: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Credits {
    /// In US cents.
    pub credit_balance: f64,
}

/// Luma's names of the states.
pub fn state_name(state: State) -> &'static str {
    match state {
        State::Pending => "queued",
        State::Processing => "dreaming",
        State::Completed => "completed",
        State::Failed => "failed",
    }
}

impl GenerationView {
    pub fn new(t: &Task, blobs: &dyn BlobStore, origin: &str, ttl: Duration) -> Self {
        let assets = match (&t.video, t.state) {
            (Some(v), State::Completed) => Some(AssetsView {
                video: blobs.link(&v.video_key, LinkKind::View, ttl, origin),
                image: blobs.link(&v.thumbnail_key, LinkKind::View, ttl, origin),
            }),
            _ => None,
        };
        GenerationView {
            id: t.id.to_string(),
            generation_type: "video",
            state: state_name(t.state),
            failure_reason: t.failure_reason.clone(),
            created_at: rfc3339_micros(t.created_at),
            assets,
            model: model_name(t.params.model),
            request: t.params.request_echo.clone().unwrap_or_else(|| synthesized_request(t)),
        }
    }
}

/// The request of a task made on the reseller surface, in this surface's words.
fn synthesized_request(t: &Task) -> Value {
    let p = &t.params;
    let mut request = json!({
        "generation_type": "video",
        "model": model_name(p.model),
        "prompt": t.prompt,
        "aspect_ratio": p.aspect_ratio.as_str(),
        "loop": p.looped,
        "resolution": p.resolution.as_str(),
        "duration": p.duration.as_str(),
        "callback_url": p.notify_hook,
    });
    if let Some(parent) = t.parent_id {
        request["keyframes"] = json!({"frame0": {"type": "generation", "id": parent.to_string()}});
    }
    request
}

/// A generation id from a path or keyframe; anything that is not a UUID is no generation.
pub fn generation_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse_create(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn text_image_and_extend_bodies_map_onto_engine_requests() {
        let c = parse_create(br#"{"model":"ray-2","prompt":"a tiger in snow","duration":"9s","resolution":"1080p"}"#).unwrap();
        assert_eq!(c.request.model, Model::RayV2);
        assert_eq!(c.request.duration, ClipDuration::Ten);
        assert_eq!(c.request.resolution, Resolution::P1080);
        assert!(c.extend_from.is_none());
        let c = parse_create(
            br#"{"model":"ray-2","keyframes":{"frame0":{"type":"generation","id":"x"},"frame1":{"type":"image","url":"https://h/e.png"}}}"#,
        )
        .unwrap();
        assert_eq!(c.extend_from.as_deref(), Some("x"));
        assert_eq!(c.request.image_end_url.as_deref(), Some("https://h/e.png"));
        let c = parse_create(br#"{"model":"ray-flash-2","prompt":"go","keyframes":{"frame0":{"type":"image","url":"https://h/s.png"}}}"#);
        assert_eq!(c.unwrap_err(), "Prompt is too short, minimum length is 3 characters");
        let c = parse_create(br#"{"model":"ray-flash-2","keyframes":{"frame0":{"type":"image","url":"https://h/s.png"}}}"#).unwrap();
        assert_eq!(c.request.image_url.as_deref(), Some("https://h/s.png"));
        assert_eq!(c.request.request_echo.unwrap()["generation_type"], "video");
    }

    #[test]
    fn refusals_use_luma_messages() {
        assert_eq!(err(r#"{"model":"ray-2"}"#), "Prompt is required");
        assert_eq!(err(r#"{"model":"ray-2","prompt":"abc","keyframes":{}}"#), "No keyframes provided");
        assert_eq!(
            err(r#"{"model":"ray-2","prompt":"abc","loop":true,"keyframes":{"frame1":{"type":"image","url":"https://h/e.png"}}}"#),
            "Loop is not supported for end frame"
        );
        assert!(err(r#"{"model":"ray-9","prompt":"abc"}"#).starts_with("model must be one of"));
        assert!(err(r#"{"model":"ray-2","prompt":"abc","resolution":"4k"}"#).contains("not offered"));
        assert!(err(r#"{"model":"ray-2","prompt":"abc","concepts":[{"key":"warp"}]}"#).contains("unknown concept"));
        assert!(err(r#"{"model":"ray-2","prompt":"abc","callback_url":"ftp://x"}"#).contains("callback_url"));
        assert!(err(r#"{"model":"ray-2","keyframes":{"frame1":{"type":"generation","id":"x"}}}"#).contains("frame0"));
    }
}
