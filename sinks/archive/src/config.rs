//! The archive's configuration: a serde struct with `deny_unknown_fields` and named defaults.
//!
//! ```toml
//! url = "s3://provenant-archive/prod"     # or "file:///var/lib/provenant/archive", or a path
//! archive_id = "prod"                      # origin line: provenant/prod/p<N>
//! rotate_records = 100000
//! rotate_bytes = 67108864
//! rotate_age = "10m"                       # "90s", "10m", "1h" or a number of seconds
//! key_dir = "/etc/provenant/archive-key"   # archive.key + archive.pub (created if missing)
//!
//! [s3]
//! endpoint = "http://127.0.0.1:8333"
//! region = "us-east-1"
//! path_style = true
//! allow_http = true
//! # credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment, or here
//! ```
//!
//! Credentials are [`Secret`]s: their `Debug` shows `***`, and no error or log line includes them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::note::DEFAULT_KEY_NAME;

/// Default rotation by record count.
pub const DEFAULT_ROTATE_RECORDS: u64 = 100_000;
/// Default rotation by size (64 MiB as stored).
pub const DEFAULT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// Default rotation by age.
pub const DEFAULT_ROTATE_AGE: Duration = Duration::from_secs(600);
/// Default uncompressed size of an Avro block.
pub const DEFAULT_BLOCK_BYTES: usize = 256 * 1024;
/// Default cap on block buffers held in memory across all partitions.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 16 * 1024 * 1024;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// A secret string (a credential). Never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The archive sink's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Where the archive lives: `file:///abs/path`, `file://relative/path`, a plain path, or
    /// `s3://bucket/prefix`.
    pub url: String,
    /// Names the archive in checkpoint origins (`provenant/<archive_id>/p<N>`).
    pub archive_id: String,
    /// Rotate a segment after this many records.
    pub rotate_records: u64,
    /// Rotate a segment once it holds this many bytes (compressed, as stored).
    pub rotate_bytes: u64,
    /// Rotate a segment this long after its first record, even if nothing else arrives.
    #[serde(deserialize_with = "deserialize_duration")]
    pub rotate_age: Duration,
    /// Directory of the signing key (`archive.key`, `archive.pub`); the runner loads it with
    /// [`crate::load_or_create_key`].
    pub key_dir: Option<PathBuf>,
    /// The key's name in checkpoint signatures (used when a key is created).
    pub key_name: String,
    /// Uncompressed size of one Avro block before it is compressed to the spool.
    pub block_bytes: usize,
    /// Cap on block buffers in memory across all partitions; past it the largest are flushed.
    pub max_buffered_bytes: usize,
    /// zstd compression level.
    pub zstd_level: i32,
    /// Where open segments are spooled (default: the system temp directory).
    pub spool_dir: Option<PathBuf>,
    /// S3 options (for `s3://` URLs).
    pub s3: S3Options,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            url: "file://archive".into(),
            archive_id: "default".into(),
            rotate_records: DEFAULT_ROTATE_RECORDS,
            rotate_bytes: DEFAULT_ROTATE_BYTES,
            rotate_age: DEFAULT_ROTATE_AGE,
            key_dir: None,
            key_name: DEFAULT_KEY_NAME.into(),
            block_bytes: DEFAULT_BLOCK_BYTES,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            spool_dir: None,
            s3: S3Options::default(),
        }
    }
}

impl ArchiveConfig {
    /// Checks values that serde cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.archive_id.is_empty()
            || !self
                .archive_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "archive_id {:?} must be non-empty: letters, digits, '-', '_', '.'",
                self.archive_id
            ));
        }
        if self.rotate_records == 0 || self.rotate_bytes == 0 || self.rotate_age.is_zero() {
            return Err("rotate_records, rotate_bytes and rotate_age must be above zero".into());
        }
        if self.block_bytes == 0 {
            return Err("block_bytes must be above zero".into());
        }
        Ok(())
    }
}

/// S3 (and S3-compatible) options. Anything left out comes from the standard `AWS_*`
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:8333` for SeaweedFS or MinIO.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible servers want.
    pub path_style: bool,
    /// Allow `http://` endpoints.
    pub allow_http: bool,
}

/// Parses `"90s"`, `"10m"`, `"1h"`, `"500ms"` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration {s:?}: expected e.g. 90s, 10m, 1h"))?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => {
            return Err(format!(
                "duration {s:?}: unknown unit {other:?} (ms, s, m, h)"
            ));
        }
    };
    Ok(d)
}

/// Serde `deserialize_with` for a duration written as [`parse_duration`] reads it, or as a
/// bare number of seconds.
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Secs(u64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Secs(n) => Ok(Duration::from_secs(n)),
        Either::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_example_file_parses() {
        let c: ArchiveConfig = toml::from_str(include_str!("../archive.example.toml")).unwrap();
        c.check().unwrap();
        assert_eq!(c.archive_id, "prod");
        assert!(c.s3.path_style);
    }

    #[test]
    fn the_documented_example_parses_and_unknown_fields_are_refused() {
        let text = r#"
url = "s3://provenant-archive/prod"
archive_id = "prod"
rotate_records = 100000
rotate_bytes = 67108864
rotate_age = "10m"
key_dir = "/etc/provenant/archive-key"

[s3]
endpoint = "http://127.0.0.1:8333"
region = "us-east-1"
path_style = true
allow_http = true
secret_access_key = "hunter2"
"#;
        let c: ArchiveConfig = toml::from_str(text).unwrap();
        assert_eq!(c.rotate_age, Duration::from_secs(600));
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        c.check().unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(toml::from_str::<ArchiveConfig>("rotate_recs = 1").is_err());
        assert!(toml::from_str::<ArchiveConfig>("[s3]\nbucket = \"x\"").is_err());
        let d: ArchiveConfig = toml::from_str("rotate_age = 30").unwrap();
        assert_eq!(d.rotate_age, Duration::from_secs(30));
        assert_eq!(
            d,
            ArchiveConfig {
                rotate_age: Duration::from_secs(30),
                ..ArchiveConfig::default()
            }
        );
        assert!(parse_duration("5 days").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }
}
