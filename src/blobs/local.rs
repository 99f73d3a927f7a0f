//! Blobs as files under a folder, served by `/files` with signed links.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use super::signing::LinkSigner;
use super::{key, BlobError, BlobStore, LinkKind};

pub struct LocalBlobs {
    root: PathBuf,
    signer: LinkSigner,
}

impl LocalBlobs {
    pub fn new(root: PathBuf, signer: LinkSigner) -> Self {
        LocalBlobs { root, signer }
    }

    /// The file behind a key, if the key is well formed.
    pub fn path_of(&self, blob: &str) -> Option<PathBuf> {
        key::is_well_formed(blob).then(|| self.root.join(blob))
    }

    pub fn signer(&self) -> &LinkSigner {
        &self.signer
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn put(&self, blob: &str, bytes: Bytes) -> Result<(), BlobError> {
        let path = self.path_of(blob).ok_or_else(|| BlobError::Io(format!("malformed blob key `{blob}`")))?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        // Write then rename, so a reader never sees a half-written file and a crash
        // leaves either the old blob or the new one.
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&tmp, &bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(())
    }

    async fn get(&self, blob: &str) -> Result<Bytes, BlobError> {
        let path = self.path_of(blob).ok_or_else(|| BlobError::NotFound(blob.to_string()))?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound(blob.to_string())),
            Err(e) => Err(io(e)),
        }
    }

    fn link(&self, blob: &str, kind: LinkKind, ttl: Duration, base_url: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let expires = (now + ttl).as_secs();
        format!("{base_url}/files/{blob}?{}", self.signer.query(blob, kind, expires))
    }

    async fn ready(&self) -> bool {
        tokio::fs::metadata(&self.root).await.is_ok_and(|m| m.is_dir())
    }
}

fn io(e: std::io::Error) -> BlobError {
    BlobError::Io(e.to_string())
}
