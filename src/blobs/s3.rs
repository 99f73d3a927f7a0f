//! Blobs in an S3-compatible bucket, for replicas that share no disk. Every request —
//! ours and the clients' — is a presigned URL (SigV4 in the query), so the links handed
//! out are plain HTTPS that any player can stream with byte ranges, and they expire
//! exactly like the local ones.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use rusty_s3::actions::{CreateBucket, GetObject, HeadBucket, PutObject};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

use super::{key, BlobError, BlobStore, LinkKind};

/// How long the URLs of our own requests stay valid (they are used at once).
const REQUEST_TTL: Duration = Duration::from_secs(300);

/// Where the blobs live, parsed from `s3://BUCKET?endpoint=...&region=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Origin of an S3-compatible server; AWS itself when unset.
    pub endpoint: Option<Url>,
    pub region: String,
    /// Path-style URLs (`endpoint/bucket/key`): the default with a custom endpoint,
    /// since most S3-compatible servers expect them.
    pub path_style: bool,
}

impl S3Location {
    pub fn parse(spec: &str) -> Result<S3Location, String> {
        let url = Url::parse(spec).map_err(|e| format!("storage `{spec}` is not a URL: {e}"))?;
        if url.scheme() != "s3" {
            return Err(format!("storage `{spec}`: only s3://BUCKET?endpoint=...&region=... is supported"));
        }
        let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| format!("storage `{spec}` names no bucket"))?;
        if !url.path().is_empty() && url.path() != "/" {
            return Err(format!("storage `{spec}`: a key prefix is not supported, give only the bucket"));
        }
        let mut endpoint = None;
        let mut region = None;
        let mut style = None;
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "endpoint" => {
                    let e = Url::parse(&value).map_err(|e| format!("storage endpoint `{value}`: {e}"))?;
                    if !matches!(e.scheme(), "http" | "https") || e.host_str().is_none() {
                        return Err(format!("storage endpoint `{value}` must be an http(s) URL"));
                    }
                    endpoint = Some(e);
                }
                "region" => region = Some(value.into_owned()),
                "style" => match value.as_ref() {
                    "path" => style = Some(true),
                    "virtual" => style = Some(false),
                    other => return Err(format!("storage style `{other}`: use path or virtual")),
                },
                other => return Err(format!("storage `{spec}`: unknown parameter `{other}` (endpoint, region, style)")),
            }
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            path_style: style.unwrap_or(endpoint.is_some()),
            endpoint,
            region: region.unwrap_or_else(|| "us-east-1".into()),
        })
    }
}

pub struct S3Blobs {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

impl S3Blobs {
    pub fn new(location: &S3Location, credentials: Credentials) -> Result<S3Blobs, String> {
        let endpoint = match &location.endpoint {
            Some(e) => e.clone(),
            None => Url::parse(&format!("https://s3.{}.amazonaws.com", location.region)).map_err(|e| e.to_string())?,
        };
        let style = if location.path_style { UrlStyle::Path } else { UrlStyle::VirtualHost };
        let bucket = Bucket::new(endpoint, style, location.bucket.clone(), location.region.clone())
            .map_err(|e| format!("bucket `{}`: {e}", location.bucket))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(S3Blobs { bucket, credentials, http })
    }

    /// Credentials from the usual AWS environment variables.
    pub fn from_env(location: &S3Location) -> Result<S3Blobs, String> {
        let credentials = Credentials::from_env()
            .ok_or("S3 storage needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")?;
        Self::new(location, credentials)
    }

    /// Creates the bucket; an existing one is fine (for setups and tests).
    pub async fn create_bucket(&self) -> Result<(), BlobError> {
        let url = CreateBucket::new(&self.bucket, &self.credentials).sign(REQUEST_TTL);
        let resp = self.http.put(url).send().await.map_err(io)?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            s => Err(BlobError::Io(format!("creating bucket `{}`: {s}: {}", self.bucket.name(), body(resp).await))),
        }
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, blob: &str, bytes: Bytes) -> Result<(), BlobError> {
        if !key::is_well_formed(blob) {
            return Err(BlobError::Io(format!("malformed blob key `{blob}`")));
        }
        let url = PutObject::new(&self.bucket, Some(&self.credentials), blob).sign(REQUEST_TTL);
        // An object appears whole or not at all, so no temporary name is needed.
        let resp = self.http.put(url).body(bytes).send().await.map_err(io)?;
        if !resp.status().is_success() {
            return Err(BlobError::Io(format!("storing `{blob}`: {}: {}", resp.status(), body(resp).await)));
        }
        Ok(())
    }

    async fn get(&self, blob: &str) -> Result<Bytes, BlobError> {
        if !key::is_well_formed(blob) {
            return Err(BlobError::NotFound(blob.to_string()));
        }
        let url = GetObject::new(&self.bucket, Some(&self.credentials), blob).sign(REQUEST_TTL);
        let resp = self.http.get(url).send().await.map_err(io)?;
        match resp.status() {
            StatusCode::OK => resp.bytes().await.map_err(io),
            StatusCode::NOT_FOUND => Err(BlobError::NotFound(blob.to_string())),
            s => Err(BlobError::Io(format!("reading `{blob}`: {s}: {}", body(resp).await))),
        }
    }

    fn link(&self, blob: &str, kind: LinkKind, ttl: Duration, _base_url: &str) -> String {
        let mut action = GetObject::new(&self.bucket, Some(&self.credentials), blob);
        if kind == LinkKind::Download {
            let name = blob.rsplit('/').next().unwrap_or("video.mp4");
            action.query_mut().insert("response-content-disposition", format!("attachment; filename=\"{name}\""));
        }
        action.sign(ttl).to_string()
    }

    async fn ready(&self) -> bool {
        let url = HeadBucket::new(&self.bucket, Some(&self.credentials)).sign(REQUEST_TTL);
        let probe = self.http.head(url).timeout(Duration::from_secs(3)).send().await;
        probe.is_ok_and(|r| r.status().is_success())
    }
}

fn io(e: impl std::fmt::Display) -> BlobError {
    BlobError::Io(e.to_string())
}

/// The start of an error body (S3 explains errors in XML).
async fn body(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_bad_ones_say_what_is_wrong() {
        let l = S3Location::parse("s3://videos?endpoint=http://127.0.0.1:9000&region=eu-west-1").unwrap();
        assert_eq!(l.bucket, "videos");
        assert_eq!(l.region, "eu-west-1");
        assert!(l.path_style);
        assert_eq!(l.endpoint.unwrap().as_str(), "http://127.0.0.1:9000/");
        let aws = S3Location::parse("s3://videos").unwrap();
        assert!(!aws.path_style && aws.endpoint.is_none() && aws.region == "us-east-1");
        for (bad, says) in [
            ("file:///tmp", "only s3://"),
            ("s3://b?endpoint=ftp://x", "http(s)"),
            ("s3://b?colour=red", "unknown parameter `colour`"),
            ("s3://b/prefix", "prefix"),
            ("s3://b?style=sideways", "path or virtual"),
        ] {
            let err = S3Location::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
