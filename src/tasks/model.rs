//! The task domain: tiers, states and the validated generation parameters.
//!
//! Every value here is already valid; the wire layer parses into these types
//! ("parse, don't validate"), so the engine never re-checks strings.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which queue a task waits in, fixed by the path it was created on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Queued fairly across keys; videos carry a visible watermark.
    Relax,
    /// No queue, reserved capacity, no watermark.
    Pro,
}

impl Tier {
    pub const ALL: [Tier; 2] = [Tier::Relax, Tier::Pro];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Relax => "relax",
            Tier::Pro => "pro",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether videos of this tier carry the visible watermark.
    pub fn watermarked(self) -> bool {
        self == Tier::Relax
    }
}

/// The public lifecycle of a task. It only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Processing => "processing",
            State::Completed => "completed",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [State::Pending, State::Processing, State::Completed, State::Failed]
            .into_iter()
            .find(|t| t.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, State::Completed | State::Failed)
    }
}

/// Declares a closed set of wire strings as an enum with `as_str`, `parse` and `ALLOWED`.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $wire)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The allowed wire values, for error messages.
            pub const ALLOWED: &'static str = concat_list!($($wire),+);
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $wire),+ } }
            pub fn parse(s: &str) -> Option<Self> { Self::ALL.iter().copied().find(|v| v.as_str() == s) }
        }
    };
}

macro_rules! concat_list {
    ($first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}

wire_enum!(
    /// Frame shape of the video.
    AspectRatio { Square = "1:1", Wide = "16:9", Tall = "9:16", Classic = "4:3", ClassicTall = "3:4", Cinema = "21:9", CinemaTall = "9:21" }
);

impl AspectRatio {
    /// The ratio as (width, height) parts.
    pub fn parts(self) -> (u32, u32) {
        let (w, h) = self.as_str().split_once(':').expect("wire values are W:H");
        (w.parse().expect("digits"), h.parse().expect("digits"))
    }
}

wire_enum!(
    /// Short side of the frame.
    Resolution { P720 = "720p", P1080 = "1080p" }
);

impl Resolution {
    pub fn short_side(self) -> u32 {
        match self {
            Resolution::P720 => 720,
            Resolution::P1080 => 1080,
        }
    }
}

wire_enum!(
    /// Length of the generated segment.
    ClipDuration { Five = "5s", Ten = "10s" }
);

impl ClipDuration {
    pub fn seconds(self) -> u32 {
        match self {
            ClipDuration::Five => 5,
            ClipDuration::Ten => 10,
        }
    }
}

wire_enum!(
    /// The video model, by its reseller name (officially Ray 1.6, Ray 2, Ray 3).
    Model { RayV1 = "ray-v1", RayV2 = "ray-v2", RayV3 = "ray-v3" }
);

/// Everything a task asks the upstream for, besides the prompt. Stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub model: Model,
    pub aspect_ratio: AspectRatio,
    pub resolution: Resolution,
    pub duration: ClipDuration,
    #[serde(rename = "loop")]
    pub looped: bool,
    pub expand_prompt: bool,
    /// Blob key of the stored start keyframe.
    pub start_image: Option<String>,
    /// Blob key of the stored end keyframe.
    pub end_image: Option<String>,
    pub notify_hook: Option<String>,
    /// The API surface that created the task: webhooks carry the task in its shape.
    #[serde(default)]
    pub surface: Surface,
    /// The Dream Machine request as the caller sent it (images as given, unless inline),
    /// echoed in that surface's `request` field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_echo: Option<serde_json::Value>,
}

/// The public API surfaces. Tasks are one pool; the surface decides only shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// `/luma` and `/pro/luma` (API.md §3).
    #[default]
    Reseller,
    /// `/dream-machine/v1` (API.md §7).
    DreamMachine,
}

impl Surface {
    /// The request field that carries the webhook URL on this surface.
    pub fn hook_field(self) -> &'static str {
        match self {
            Surface::Reseller => "notify_hook",
            Surface::DreamMachine => "callback_url",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Reseller => "reseller",
            Surface::DreamMachine => "dream_machine",
        }
    }

    pub fn parse(s: &str) -> Option<Surface> {
        [Surface::Reseller, Surface::DreamMachine].into_iter().find(|v| v.as_str() == s)
    }
}

/// The stored result of a completed task.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoRef {
    pub video_key: String,
    pub thumbnail_key: String,
    pub width: u32,
    pub height: u32,
    pub duration_secs: f64,
}

/// A task as stored. Engine-private fields (account, upstream id, lease) live here too;
/// the wire layer decides what is public.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: Uuid,
    pub key_id: String,
    pub tier: Tier,
    pub state: State,
    pub prompt: String,
    pub params: Params,
    pub parent_id: Option<Uuid>,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
    pub progress: u8,
    pub failure_reason: Option<String>,
    pub video: Option<VideoRef>,
    pub account_id: Option<String>,
    pub upstream_id: Option<String>,
    pub attempt: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub dispatched_at: Option<i64>,
    pub last_progress_at: Option<i64>,
    /// Deleted by its owner: invisible to the API, kept so extends of it still run.
    pub deleted: bool,
}

impl Task {
    /// Waiting in the queue: accepted, not yet given to an account.
    pub fn is_queued(&self) -> bool {
        self.state == State::Pending && self.account_id.is_none()
    }
}

/// A task about to be stored.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: Uuid,
    pub key_id: String,
    pub tier: Tier,
    pub prompt: String,
    pub params: Params,
    pub parent_id: Option<Uuid>,
    /// Extend tasks are pinned to the account that made their parent.
    pub pinned_account: Option<String>,
    pub created_at: i64,
    /// Recorded with the task in the same transaction, so a repeated request finds it.
    pub idempotency: Option<Idempotency>,
}

impl NewTask {
    /// The task as it stands right after it was stored: queued, no progress.
    pub fn as_stored(&self) -> Task {
        Task {
            id: self.id,
            key_id: self.key_id.clone(),
            tier: self.tier,
            state: State::Pending,
            prompt: self.prompt.clone(),
            params: self.params.clone(),
            parent_id: self.parent_id,
            created_at: self.created_at,
            progress: 0,
            failure_reason: None,
            video: None,
            account_id: None,
            upstream_id: None,
            attempt: None,
            lease_owner: None,
            lease_until: None,
            dispatched_at: None,
            last_progress_at: None,
            deleted: false,
        }
    }
}

#[cfg(test)]
impl Task {
    /// A queued relax task of key `k`, for unit tests.
    pub(crate) fn sample() -> Task {
        NewTask::sample().as_stored()
    }
}

#[cfg(test)]
impl NewTask {
    /// A relax task of key `k` about to be stored, for unit tests.
    pub(crate) fn sample() -> NewTask {
        NewTask {
            id: Uuid::new_v4(),
            key_id: "k".into(),
            tier: Tier::Relax,
            prompt: "a cat".into(),
            params: Params {
                model: Model::RayV2,
                aspect_ratio: AspectRatio::Wide,
                resolution: Resolution::P720,
                duration: ClipDuration::Five,
                looped: false,
                expand_prompt: false,
                start_image: None,
                end_image: None,
                notify_hook: None,
                surface: Surface::Reseller,
                request_echo: None,
            },
            parent_id: None,
            pinned_account: None,
            created_at: 1,
            idempotency: None,
        }
    }
}

/// A caller's `Idempotency-Key` and a digest of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    /// SHA-256 (hex) of the surface, the path and the body: the same key with another
    /// request is refused rather than answered with an unrelated task.
    pub request_hash: String,
}

/// Microseconds since the Unix epoch, the store's clock unit.
pub fn now_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_micros() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip_and_list_allowed_values() {
        assert_eq!(AspectRatio::parse("21:9"), Some(AspectRatio::Cinema));
        assert_eq!(AspectRatio::Cinema.parts(), (21, 9));
        assert_eq!(AspectRatio::parse("2:1"), None);
        assert_eq!(ClipDuration::ALLOWED, "5s, 10s");
        assert_eq!(Model::ALLOWED, "ray-v1, ray-v2, ray-v3");
        assert_eq!(Tier::parse("pro"), Some(Tier::Pro));
    }
}
