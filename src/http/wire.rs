//! The reseller task object (API.md §3.3), built fresh on every read so that links are
//! newly signed each time.

use std::time::Duration;

use serde::Serialize;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::blobs::{BlobStore, LinkKind};
use crate::tasks::model::State;
use crate::tasks::TaskInfo;

#[derive(Debug, Serialize)]
pub struct TaskView {
    pub id: String,
    pub prompt: String,
    pub state: &'static str,
    pub created_at: String,
    pub estimate_wait_seconds: Option<u64>,
    pub liked: Option<bool>,
    pub video: VideoView,
    pub failure_reason: Option<String>,
    pub progress: u8,
    pub tier: &'static str,
    pub model_name: &'static str,
    pub aspect_ratio: &'static str,
    pub resolution: &'static str,
    pub duration: &'static str,
    #[serde(rename = "loop")]
    pub looped: bool,
    pub parent_id: Option<String>,
    pub queue_position: Option<u64>,
}

#[derive(Debug, Default, Serialize)]
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
pub fn rfc3339_micros(micros: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_have_microseconds_and_z() {
        assert_eq!(super::rfc3339_micros(1_719_200_447_505_420), "2024-06-24T03:40:47.505420Z");
    }
}
