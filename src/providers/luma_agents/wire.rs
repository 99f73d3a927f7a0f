//! The Agents API's JSON shapes, as far as lumagate reads and writes them.

use serde::{Deserialize, Serialize};

/// `POST /generations` for a video.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CreateRequest {
    pub model: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub prompt: String,
    pub aspect_ratio: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    pub video: VideoOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VideoOptions {
    pub resolution: String,
    pub duration: String,
    #[serde(rename = "loop", skip_serializing_if = "Option::is_none", default)]
    pub looped: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub start_frame: Option<FrameRef>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub end_frame: Option<FrameRef>,
}

/// An ImageRef: exactly one of a URL, inline data, or a prior generation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum FrameRef {
    Url { url: String },
    Data { data: String, media_type: String },
    Generation { generation_id: String },
}

/// A generation, as create and get return it.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Generation {
    pub id: Option<String>,
    pub state: Option<String>,
    pub created_at: Option<String>,
    /// `[]` until completion; `null` is read as empty too.
    pub output: Option<Vec<Output>>,
    pub failure_reason: Option<String>,
    pub failure_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Output {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub url: Option<String>,
}
