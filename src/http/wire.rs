//! The reseller task object (API.md §3.3), built fresh on every read so that links are
//! newly signed each time.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;
use time::OffsetDateTime;

use crate::blobs::{BlobStore, LinkKind};
use crate::tasks::model::State;
use crate::tasks::TaskInfo;

/// A task (API.md §3.3).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    #[schema(format = "uuid")]
    pub id: String,
    pub prompt: String,
    #[schema(value_type = String, pattern = "^(pending|processing|completed|failed)$")]
    pub state: &'static str,
    /// RFC 3339 UTC with microseconds.
    #[schema(format = DateTime)]
    pub created_at: String,
    pub estimate_wait_seconds: Option<u64>,
    pub liked: Option<bool>,
    pub video: VideoView,
    pub failure_reason: Option<String>,
    #[schema(maximum = 100)]
    pub progress: u8,
    #[schema(value_type = String, pattern = "^(relax|pro)$")]
    pub tier: &'static str,
    #[schema(value_type = String)]
    pub model_name: &'static str,
    #[schema(value_type = String)]
    pub aspect_ratio: &'static str,
    #[schema(value_type = String)]
    pub resolution: &'static str,
    #[schema(value_type = String)]
    pub duration: &'static str,
    #[serde(rename = "loop")]
    pub looped: bool,
    #[schema(format = "uuid")]
    pub parent_id: Option<String>,
    pub queue_position: Option<u64>,
}

/// The finished video: empty strings and zeros until the task is `completed`.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct VideoView {
    pub url: String,
    pub download_url: String,
    pub thumbnail: String,
    pub width: u32,
    pub height: u32,
}

impl TaskView {
    pub fn new(info: &TaskInfo, blobs: &dyn BlobStore, origin: &str, ttl: Duration) -> Self {
        let t = &info.task;
        let video = match (&t.video, t.state) {
            (Some(v), State::Completed) => VideoView {
                url: blobs.link(&v.video_key, LinkKind::View, ttl, origin),
                download_url: blobs.link(&v.video_key, LinkKind::Download, ttl, origin),
                thumbnail: blobs.link(&v.thumbnail_key, LinkKind::View, ttl, origin),
                width: v.width,
                height: v.height,
            },
            _ => VideoView::default(),
        };
        TaskView {
            id: t.id.to_string(),
            prompt: t.prompt.clone(),
            state: t.state.as_str(),
            created_at: rfc3339_micros(t.created_at),
            estimate_wait_seconds: info.estimate_wait_seconds,
            liked: None,
            video,
            failure_reason: t.failure_reason.clone(),
            progress: t.progress,
            tier: t.tier.as_str(),
            model_name: t.params.model.as_str(),
            aspect_ratio: t.params.aspect_ratio.as_str(),
            resolution: t.params.resolution.as_str(),
            duration: t.params.duration.as_str(),
            looped: t.params.looped,
            parent_id: t.parent_id.map(|p| p.to_string()),
            queue_position: info.queue_position,
        }
    }
}

/// RFC 3339 in UTC with microseconds and `Z`, as the reference API writes it.
///
/// Formatted from the date's parts rather than through a format description: every
/// poll writes one, and the generic formatter was a tenth of a poll's CPU time.
pub fn rfc3339_micros(micros: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_have_microseconds_and_z() {
        assert_eq!(super::rfc3339_micros(1_719_200_447_505_420), "2024-06-24T03:40:47.505420Z");
        assert_eq!(super::rfc3339_micros(5), "1970-01-01T00:00:00.000005Z");
        assert_eq!(super::rfc3339_micros(1_704_067_199_999_999), "2023-12-31T23:59:59.999999Z");
    }
}

/// The create body (API.md §3.1). An empty string or `null` means
/// "not given"; unknown fields are ignored.
//
// For the document only: bodies are parsed loosely (tasks::request) so that each error
// names its field. The allowed values come from the model's own lists.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GenerationBody {
    /// Required (non-blank) on create when no `image_url` is given.
    #[schema(schema_with = prompt_schema)]
    user_prompt: Option<String>,
    /// Start keyframe: an http(s) URL, a `data:image/...;base64,` URI, or bare base64. 
    #[schema(schema_with = optional_string)]
    image_url: Option<String>,
    /// End keyframe, same forms as `image_url`.
    #[schema(schema_with = optional_string)]
    image_end_url: Option<String>,
    #[schema(schema_with = aspect_ratio_schema)]
    aspect_ratio: Option<String>,
    #[schema(schema_with = optional_bool)]
    expand_prompt: Option<bool>,
    /// The last frame returns to the first; not with `image_end_url`.
    #[schema(schema_with = optional_bool)]
    r#loop: Option<bool>,
    #[schema(schema_with = resolution_schema)]
    resolution: Option<String>,
    #[schema(schema_with = duration_schema)]
    duration: Option<String>,
    #[schema(schema_with = model_schema)]
    model_name: Option<String>,
    /// An http(s) URL that receives the task on every state change.
    #[schema(schema_with = optional_string)]
    notify_hook: Option<String>,
}

/// The extend body (API.md §3.2): as create, but the parent's last frame is the start
/// frame, so there is no `image_url`.
//
// For the document only: bodies are parsed loosely (tasks::request) so that each error
// names its field. The allowed values come from the model's own lists.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ExtendBody {
    /// The new segment's prompt.
    #[schema(schema_with = prompt_schema)]
    user_prompt: Option<String>,
    /// End keyframe: an http(s) URL, a `data:image/...;base64,` URI, or bare base64.
    #[schema(schema_with = optional_string)]
    image_end_url: Option<String>,
    #[schema(schema_with = aspect_ratio_schema)]
    aspect_ratio: Option<String>,
    #[schema(schema_with = optional_bool)]
    expand_prompt: Option<bool>,
    /// The last frame returns to the first; not with `image_end_url`.
    #[schema(schema_with = optional_bool)]
    r#loop: Option<bool>,
    #[schema(schema_with = resolution_schema)]
    resolution: Option<String>,
    #[schema(schema_with = duration_schema)]
    duration: Option<String>,
    #[schema(schema_with = model_schema)]
    model_name: Option<String>,
    /// An http(s) URL that receives the task on every state change.
    #[schema(schema_with = optional_string)]
    notify_hook: Option<String>,
}

mod body_schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    use utoipa::openapi::Object;

    fn nullable(t: Type) -> SchemaType {
        SchemaType::from_iter([t, Type::Null])
    }

    pub fn optional_string() -> Object {
        ObjectBuilder::new().schema_type(nullable(Type::String)).build()
    }

    pub fn optional_bool() -> Object {
        ObjectBuilder::new().schema_type(nullable(Type::Boolean)).build()
    }

    pub fn prompt_schema() -> Object {
        ObjectBuilder::new()
            .schema_type(nullable(Type::String))
            .max_length(Some(crate::tasks::request::MAX_PROMPT_CHARS))
            .build()
    }

    /// One of `values`, or "not given" (`""` or `null`).
    pub fn choice<'a>(values: impl Iterator<Item = &'a str>) -> Object {
        let mut allowed: Vec<serde_json::Value> = values.map(Into::into).collect();
        allowed.push("".into());
        allowed.push(serde_json::Value::Null);
        ObjectBuilder::new().schema_type(nullable(Type::String)).enum_values(Some(allowed)).build()
    }
}

use body_schema::{optional_bool, optional_string, prompt_schema};

fn aspect_ratio_schema() -> utoipa::openapi::Object {
    body_schema::choice(crate::tasks::model::AspectRatio::ALL.iter().map(|v| v.as_str()))
}

fn resolution_schema() -> utoipa::openapi::Object {
    body_schema::choice(crate::tasks::model::Resolution::ALL.iter().map(|v| v.as_str()))
}

fn duration_schema() -> utoipa::openapi::Object {
    body_schema::choice(crate::tasks::model::ClipDuration::ALL.iter().map(|v| v.as_str()))
}

fn model_schema() -> utoipa::openapi::Object {
    body_schema::choice(crate::tasks::model::Model::ALL.iter().map(|v| v.as_str()))
}

/// `download_video_url`'s answer.
#[derive(Serialize, ToSchema)]
pub struct DownloadLink {
    /// A signed link to the video with `Content-Disposition: attachment`.
    pub url: String,
}

/// `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
}
