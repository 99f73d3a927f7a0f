//! Where videos, thumbnails and keyframes live, and the signed links to them.
//!
//! The embedded default keeps blobs in the data folder and serves them at `/files`
//! behind HMAC-signed, expiring links; an S3-compatible bucket (`s3`) hands out
//! presigned links instead, behind the same trait.

mod local;
pub mod s3;
pub mod signing;

pub use local::LocalBlobs;
pub use s3::{S3Blobs, S3Location};

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob `{0}` not found")]
    NotFound(String),
    #[error("blob storage error: {0}")]
    Io(String),
}

/// A link's purpose: inline viewing, or a download with `Content-Disposition: attachment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    View,
    Download,
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError>;
    async fn get(&self, key: &str) -> Result<Bytes, BlobError>;
    /// An absolute link to the blob, valid for `ttl`. `base_url` is the public origin
    /// of this service (scheme and host, no trailing slash).
    fn link(&self, key: &str, kind: LinkKind, ttl: Duration, base_url: &str) -> String;
    /// Whether the storage answers.
    async fn ready(&self) -> bool;
}

/// Blob keys are made by lumagate, never by callers: one folder per kind, then the task.
pub mod key {
    use uuid::Uuid;

    pub fn video(task: Uuid) -> String {
        format!("videos/{task}.mp4")
    }

    pub fn thumbnail(task: Uuid) -> String {
        format!("thumbnails/{task}.jpg")
    }

    pub fn keyframe(task: Uuid, which: &str, extension: &str) -> String {
        format!("keyframes/{task}-{which}.{extension}")
    }

    /// Whether a key is one lumagate could have made: no traversal, no odd characters.
    pub fn is_well_formed(key: &str) -> bool {
        !key.is_empty()
            && key.len() < 200
            && key.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    }
}
