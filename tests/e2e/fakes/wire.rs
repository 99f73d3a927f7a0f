//! The two APIs' shapes: request validation as their docs describe it, and the
//! generation object each returns.

use serde_json::{json, Value};

use super::{Generation, Outcome};

/// Which upstream API a fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `…/dream-machine/v1`: Ray 1.6 and Ray 2.
    DreamMachine,
    /// `…/v1`: the Agents API, Ray 3.2.
    Agents,
}

/// What an accepted request asks for.
pub struct Plan {
    pub image_urls: Vec<String>,
    pub parent: Option<String>,
    pub seconds: f64,
    pub frame: (u32, u32),
}

/// The fakes render small frames: the shape matters to the tests, the size does not.
const SHORT_SIDE: u32 = 72;

type Refusal = (u16, String);

fn refuse<T>(status: u16, text: impl Into<String>) -> Result<T, Refusal> {
    Err((status, text.into()))
}

fn frame_of(aspect: &str) -> Result<(u32, u32), Refusal> {
    let (w, h) = aspect.split_once(':').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?))).ok_or((400, format!("Invalid aspect_ratio '{aspect}'")))?;
    Ok(lumagate::media::render::frame_size((w, h), SHORT_SIDE))
}

impl Flavor {
    pub fn prefix(self) -> &'static str {
        match self {
            Flavor::DreamMachine => "/dream-machine/v1",
            Flavor::Agents => "/v1",
        }
    }

    pub fn running_state(self) -> &'static str {
        match self {
            Flavor::DreamMachine => "dreaming",
            Flavor::Agents => "processing",
        }
    }

    pub(super) fn validate(self, r: &Value) -> Result<Plan, Refusal> {
        match self {
            Flavor::DreamMachine => dream_machine(r),
            Flavor::Agents => agents(r),
        }
    }

    pub(super) fn generation(self, g: &Generation, state: &str, link: Option<&str>) -> Value {
        let (reason, code) = match (&g.outcome, state) {
            (Outcome::Fail { reason, code }, "failed") => (Some(reason.clone()), Some(code.clone())),
            _ => (None, None),
        };
        match self {
            Flavor::DreamMachine => json!({
                "id": g.id, "generation_type": "video", "state": state, "failure_reason": reason,
                "created_at": g.created_at, "assets": link.map(|l| json!({ "video": l })),
                "model": g.request["model"], "request": g.request,
            }),
            Flavor::Agents => json!({
                "id": g.id, "type": "video", "state": state, "model": "ray-3.2", "created_at": g.created_at,
                "output": link.map(|l| vec![json!({ "type": "video", "url": l })]).unwrap_or_default(),
                "failure_reason": reason, "failure_code": code,
            }),
        }
    }
}

fn dream_machine(r: &Value) -> Result<Plan, Refusal> {
    let model = r["model"].as_str().unwrap_or("");
    if !["ray-1-6", "ray-2", "ray-flash-2"].contains(&model) {
        return refuse(400, format!("Unknown model: {model}"));
    }
    let aspect = r["aspect_ratio"].as_str().unwrap_or("16:9");
    if !["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"].contains(&aspect) {
        return refuse(400, format!("Invalid aspect_ratio '{aspect}'"));
    }
    let seconds = match (model, r["duration"].as_str()) {
        (_, None | Some("5s")) => 5.0,
        ("ray-1-6", Some(_)) => return refuse(400, "duration is not supported for this model"),
        (_, Some("9s")) => 9.0,
        (_, Some(other)) => return refuse(400, format!("Invalid duration '{other}'")),
    };
    let mut image_urls = Vec::new();
    let mut parent = None;
    let frames = &r["keyframes"];
    for slot in ["frame0", "frame1"] {
        let k = &frames[slot];
        match k["type"].as_str() {
            None if k.is_null() => {}
            Some("image") => image_urls.push(k["url"].as_str().ok_or((400, format!("{slot}: url is required")))?.to_string()),
            Some("generation") if slot == "frame0" => parent = Some(k["id"].as_str().unwrap_or("").to_string()),
            _ => return refuse(400, "Unknown request type"),
        }
    }
    let looped = r["loop"].as_bool().unwrap_or(false);
    if looped && frames["frame1"]["type"] == "image" {
        return refuse(400, "Loop is not supported for end frame");
    }
    let prompt = r["prompt"].as_str().unwrap_or("");
    if prompt.is_empty() && image_urls.is_empty() && parent.is_none() {
        return refuse(400, "Prompt is required");
    }
    Ok(Plan { image_urls, parent, seconds, frame: frame_of(aspect)? })
}

fn agents(r: &Value) -> Result<Plan, Refusal> {
    let model = r["model"].as_str().unwrap_or("uni-1");
    if model != "ray-3.2" {
        return refuse(400, format!("Unknown model: {model}"));
    }
    if r["type"].as_str() != Some("video") {
        return refuse(400, format!("Type '{}' is not supported for model 'ray-3.2'", r["type"].as_str().unwrap_or("image")));
    }
    let prompt = r["prompt"].as_str().unwrap_or("");
    if prompt.is_empty() || prompt.chars().count() > 6000 {
        return refuse(400, "Prompt must be between 1 and 6000 characters");
    }
    let aspect = r["aspect_ratio"].as_str().unwrap_or("16:9");
    if !["1:1", "16:9", "9:16", "4:3", "3:4", "21:9"].contains(&aspect) {
        return refuse(400, format!("Invalid aspect_ratio '{aspect}'. Valid: 16:9, 1:1, 21:9, 3:4, 4:3, 9:16"));
    }
    let video = &r["video"];
    let seconds = match video["duration"].as_str().unwrap_or("5s") {
        "5s" => 5.0,
        "10s" => 10.0,
        other => return refuse(400, format!("Invalid duration '{other}'")),
    };
    let mut image_urls = Vec::new();
    let mut parent = None;
    for slot in ["start_frame", "end_frame"] {
        let f = &video[slot];
        if f.is_null() {
            continue;
        }
        if seconds > 5.0 {
            return refuse(422, "Parameter combination rejected");
        }
        match (f["url"].as_str(), f["data"].as_str(), f["generation_id"].as_str()) {
            (Some(url), None, None) => image_urls.push(url.to_string()),
            (None, Some(data), None) => {
                if f["media_type"].as_str().is_none_or(|m| !m.starts_with("image/")) {
                    return refuse(400, format!("{slot}: 'media_type' is required with 'data'"));
                }
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| (422, format!("{slot}: invalid base64 data")))?;
                image::load_from_memory(&bytes).map_err(|_| (422, format!("{slot}: content-type is not an image")))?;
            }
            (None, None, Some(id)) if slot == "start_frame" => parent = Some(id.to_string()),
            _ => return refuse(400, format!("{slot}: provide exactly one of 'url', 'data', 'generation_id'")),
        }
    }
    if video["loop"].as_bool() == Some(true) && !video["end_frame"].is_null() {
        return refuse(422, "Parameter combination rejected");
    }
    Ok(Plan { image_urls, parent, seconds, frame: frame_of(aspect)? })
}
