//! Dream Machine's JSON shapes, as far as lumagate reads and writes them. Every field
//! read is optional: a missing one is handled where it matters, never a parse panic.

use serde::{Deserialize, Serialize};

/// `POST /generations/video`. Unset fields are omitted, as the official SDK does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CreateRequest {
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub aspect_ratio: String,
    #[serde(rename = "loop", default)]
    pub looped: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub keyframes: Option<Keyframes>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resolution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration: Option<String>,
}

impl CreateRequest {
    /// Whether an echoed request asked for the same thing (keyframe URLs differ between
    /// attempts, since links are signed with their expiry; their kinds do not).
    pub fn same_job(&self, other: &CreateRequest) -> bool {
        let kinds = |k: &Option<Keyframes>| {
            k.as_ref().map(|k| (k.frame0.as_ref().map(Keyframe::kind), k.frame1.as_ref().map(Keyframe::kind)))
        };
        self.model == other.model
            && self.prompt == other.prompt
            && self.aspect_ratio == other.aspect_ratio
            && self.looped == other.looped
            && kinds(&self.keyframes) == kinds(&other.keyframes)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Keyframes {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub frame0: Option<Keyframe>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub frame1: Option<Keyframe>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Keyframe {
    Image { url: String },
    Generation { id: String },
}

impl Keyframe {
    fn kind(&self) -> &'static str {
        match self {
            Keyframe::Image { .. } => "image",
            Keyframe::Generation { .. } => "generation",
        }
    }
}

/// A generation, as create, get and list return it.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Generation {
    pub id: Option<String>,
    pub state: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: Option<String>,
    pub assets: Option<Assets>,
    /// An echo of the request; an unexpected shape just does not match anything.
    #[serde(default, deserialize_with = "lenient")]
    pub request: Option<CreateRequest>,
}

impl Generation {
    pub fn created_unix(&self) -> Option<i64> {
        use time::format_description::well_known::Rfc3339;
        let created = time::OffsetDateTime::parse(self.created_at.as_deref()?, &Rfc3339).ok()?;
        Some(created.unix_timestamp())
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Assets {
    pub video: Option<String>,
    pub image: Option<String>,
}

/// `GET /generations`.
#[derive(Debug, Clone, Deserialize)]
pub struct GenerationList {
    pub generations: Vec<Generation>,
}

fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<CreateRequest>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}
