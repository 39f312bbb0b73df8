//! The archive's object store: one `object_store` implementation chosen by URL (local
//! filesystem or S3), plus the archive's root prefix, and the write-once `create`.
//!
//! Invariants:
//! * [`ArchiveStore::create`] never overwrites: it is `PutMode::Create`. If the key exists it
//!   reads the object back: identical bytes are success (the same writer retrying), anything
//!   else is [`ArchiveError::Conflict`].
//! * On the local filesystem a created object is fsync'd (file and directory) before `create`
//!   returns, so "written" means durable; on S3 a successful PUT is durable.
//! * Keys passed in and returned are relative to the archive root.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::config::S3Options;
use crate::error::ArchiveError;

/// Where an archive lives.
#[derive(Clone, Debug)]
pub struct ArchiveStore {
    inner: Arc<dyn ObjectStore>,
    /// Root prefix inside the store ("" for none).
    prefix: String,
    /// The directory of a local archive (for fsync).
    local_root: Option<PathBuf>,
    /// The URL, for messages.
    url: String,
}

/// What [`ArchiveStore::create`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The object was written.
    New,
    /// An identical object was already there.
    AlreadyIdentical,
}

impl ArchiveStore {
    /// Opens the archive at `url`: `file:///abs`, `file://rel`, a plain path (created if
    /// missing), or `s3://bucket[/prefix]` with `s3` options over the `AWS_*` environment.
    pub fn open(url: &str, s3: &S3Options) -> Result<Self, ArchiveError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ArchiveError::Config(format!(
                    "archive URL {url:?} names no bucket (s3://BUCKET/PREFIX)"
                )));
            }
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
            if let Some(e) = &s3.endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = &s3.region {
                b = b.with_region(r);
            }
            if let Some(k) = &s3.access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(k) = &s3.secret_access_key {
                b = b.with_secret_access_key(k.expose());
            }
            if let Some(t) = &s3.session_token {
                b = b.with_token(t.expose());
            }
            if s3.path_style {
                b = b.with_virtual_hosted_style_request(false);
            }
            if s3.allow_http {
                b = b.with_allow_http(true);
            }
            // The builder's error names the missing setting, never a credential value.
            let store = b.build().map_err(|e| {
                ArchiveError::Config(format!("archive URL {url:?}: S3 client: {e}"))
            })?;
            return Ok(Self {
                inner: Arc::new(store),
                prefix: prefix.trim_matches('/').to_owned(),
                local_root: None,
                url: url.to_owned(),
            });
        }
        let path = if let Some(rest) = url.strip_prefix("file://") {
            PathBuf::from(rest)
        } else if url.contains("://") {
            return Err(ArchiveError::Config(format!(
                "archive URL {url:?}: unsupported scheme (use file:// or s3://)"
            )));
        } else {
            PathBuf::from(url)
        };
        if path.as_os_str().is_empty() {
            return Err(ArchiveError::Config(format!(
                "archive URL {url:?} names no directory"
            )));
        }
        Self::open_local(path, url)
    }

    fn open_local(path: PathBuf, url: &str) -> Result<Self, ArchiveError> {
        std::fs::create_dir_all(&path).map_err(|e| {
            ArchiveError::Config(format!("archive directory {}: {e}", path.display()))
        })?;
        let root = std::fs::canonicalize(&path).map_err(|e| {
            ArchiveError::Config(format!("archive directory {}: {e}", path.display()))
        })?;
        let store = LocalFileSystem::new_with_prefix(&root).map_err(|e| {
            ArchiveError::Config(format!("archive directory {}: {e}", root.display()))
        })?;
        Ok(Self {
            inner: Arc::new(store),
            prefix: String::new(),
            local_root: Some(root),
            url: url.to_owned(),
        })
    }

    /// A store over any `object_store` implementation (tests: e.g. in-memory), with a prefix.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Self {
        Self {
            inner,
            prefix: prefix.trim_matches('/').to_owned(),
            local_root: None,
            url: url.to_owned(),
        }
    }

    /// The archive URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local directory, for a `file://` archive.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    fn full(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn rel(&self, full: &Path) -> String {
        let s = full.as_ref();
        if self.prefix.is_empty() {
            s.to_owned()
        } else {
            s.strip_prefix(&self.prefix)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(s)
                .to_owned()
        }
    }

    /// Creates `rel` with `bytes` unless it exists (write-once).
    pub async fn create(&self, rel: &str, bytes: Bytes) -> Result<Created, ArchiveError> {
        let path = self.full(rel);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(&path, PutPayload::from_bytes(bytes.clone()), opts)
            .await
        {
            Ok(_) => {
                self.sync_local(rel).await?;
                Ok(Created::New)
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = self.get(rel).await?;
                if existing == bytes {
                    Ok(Created::AlreadyIdentical)
                } else {
                    Err(ArchiveError::Conflict {
                        key: rel.to_owned(),
                    })
                }
            }
            Err(e) => Err(ArchiveError::store("create", rel, e)),
        }
    }

    async fn sync_local(&self, rel: &str) -> Result<(), ArchiveError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = root.join(rel);
        let rel = rel.to_owned();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| ArchiveError::Spool {
            dir: root.clone(),
            source: std::io::Error::other(e),
        })?
        .map_err(|e| ArchiveError::Spool {
            dir: root.join(rel),
            source: e,
        })
    }

    /// Reads a whole object.
    pub async fn get(&self, rel: &str) -> Result<Bytes, ArchiveError> {
        let r = self
            .inner
            .get(&self.full(rel))
            .await
            .map_err(|e| ArchiveError::store("get", rel, e))?;
        r.bytes()
            .await
            .map_err(|e| ArchiveError::store("get", rel, e))
    }

    /// Reads a whole object, `None` if there is none.
    pub async fn get_opt(&self, rel: &str) -> Result<Option<Bytes>, ArchiveError> {
        match self.inner.get(&self.full(rel)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| ArchiveError::store("get", rel, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ArchiveError::store("get", rel, e)),
        }
    }

    /// Every object under `rel_prefix` (a directory such as `p0003`, or "" for all), as
    /// (relative key, size), sorted by key.
    pub async fn list(&self, rel_prefix: &str) -> Result<Vec<(String, u64)>, ArchiveError> {
        let prefix = match (self.prefix.is_empty(), rel_prefix.is_empty()) {
            (true, true) => None,
            (true, false) => Some(Path::from(rel_prefix)),
            (false, true) => Some(Path::from(self.prefix.as_str())),
            (false, false) => Some(self.full(rel_prefix)),
        };
        let metas: Vec<_> = self
            .inner
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| ArchiveError::store("list", rel_prefix, e))?;
        let mut out: Vec<(String, u64)> = metas
            .into_iter()
            .map(|m| (self.rel(&m.location), m.size))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Deletes an object (tests and tamper tools only: the sink never deletes).
    pub async fn delete(&self, rel: &str) -> Result<(), ArchiveError> {
        self.inner
            .delete(&self.full(rel))
            .await
            .map_err(|e| ArchiveError::store("delete", rel, e))
    }

    /// Overwrites an object (tests and tamper tools only: the sink never overwrites).
    pub async fn overwrite(&self, rel: &str, bytes: Bytes) -> Result<(), ArchiveError> {
        self.inner
            .put(&self.full(rel), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(|e| ArchiveError::store("put", rel, e))
    }
}
