//! Where backups live: a local directory or any S3-compatible bucket, through
//! `object_store`. A backup is a "directory" `<prefix>/<name>/` holding the
//! archive and, written last, its manifest.

use std::path::Path as FsPath;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncRead;

use crate::BackupError;

/// How to reach the store, beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// S3: an endpoint for S3-compatible stores.
    pub endpoint: Option<String>,
    /// S3: the region.
    pub region: Option<String>,
}

/// An opened store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    display: String,
    /// A local store's directory (object_store leaves empty directories).
    local: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens `url`: `s3://bucket/prefix`, `file:///dir`, or a directory
    /// (relative to `base`). Credentials come from the usual `AWS_*`
    /// variables.
    pub fn open(url: &str, base: &FsPath, opts: &StoreOptions) -> Result<Self, BackupError> {
        // object_store's HTTP client uses the process-wide rustls provider;
        // kube carries its own. Both are ring, so one choice serves all.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = url.trim();
        let store_err = |e: object_store::Error| BackupError::Store { store: url.to_string(), cause: e };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(e) = opts.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok()) {
                b = b.with_allow_http(e.starts_with("http://")).with_endpoint(e);
            }
            let region = opts
                .region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok());
            b = b.with_region(region.unwrap_or_else(|| "us-east-1".into()));
            let s3 = b.build().map_err(store_err)?;
            return Ok(Self { inner: Arc::new(s3), prefix: split(prefix), display: url.to_string(), local: None });
        }
        let (dir, display) = match url.strip_prefix("file://") {
            Some(p) => (FsPath::new(p).to_path_buf(), p.to_string()),
            // Named as the spec writes it: relative to the spec's directory.
            None => (base.join(url), url.to_string()),
        };
        std::fs::create_dir_all(&dir).map_err(|e| BackupError::Io {
            what: format!("cannot create the backup directory {}", dir.display()),
            cause: e,
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(store_err)?;
        Ok(Self { inner: Arc::new(fs), prefix: Vec::new(), display, local: Some(dir) })
    }

    /// How to name the store in messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The path of `file` in backup `name`.
    pub fn path(&self, name: &str, file: &str) -> Path {
        Path::from_iter(self.prefix.iter().map(String::as_str).chain([name, file]))
    }

    fn err(&self) -> impl Fn(object_store::Error) -> BackupError + '_ {
        |e| BackupError::Store { store: self.display.clone(), cause: e }
    }

    /// The names of the backups (complete or not) in the store.
    pub async fn names(&self) -> Result<Vec<String>, BackupError> {
        let root = (!self.prefix.is_empty()).then(|| Path::from_iter(self.prefix.iter().map(String::as_str)));
        let list = self.inner.list_with_delimiter(root.as_ref()).await.map_err(self.err())?;
        let mut names: Vec<String> =
            list.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
        names.sort();
        Ok(names)
    }

    /// Reads a small file whole; `Ok(None)` when it does not exist.
    pub async fn read_small(&self, path: &Path) -> Result<Option<bytes::Bytes>, BackupError> {
        match self.inner.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(self.err())?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Writes a small file whole.
    pub async fn write_small(&self, path: &Path, data: Vec<u8>) -> Result<(), BackupError> {
        self.inner.put(path, PutPayload::from(data)).await.map_err(self.err())?;
        Ok(())
    }

    /// A streaming writer (multipart upload on S3).
    pub fn writer(&self, path: &Path) -> object_store::buffered::BufWriter {
        object_store::buffered::BufWriter::new(self.inner.clone(), path.clone())
    }

    /// A streaming reader.
    pub async fn reader(&self, path: &Path) -> Result<impl AsyncRead + Send + Unpin + 'static, BackupError> {
        let r = self.inner.get(path).await.map_err(self.err())?;
        Ok(tokio_util::io::StreamReader::new(r.into_stream().map_err(std::io::Error::other)))
    }

    /// Deletes everything under backup `name`.
    pub async fn delete(&self, name: &str) -> Result<usize, BackupError> {
        let dir = Path::from_iter(self.prefix.iter().map(String::as_str).chain([name]));
        let files: Vec<_> =
            self.inner.list(Some(&dir)).map_ok(|m| m.location).try_collect().await.map_err(self.err())?;
        // The manifest goes first: a half-deleted backup must read as incomplete.
        let mut files = files;
        files.sort_by_key(|p| p.filename() != Some(crate::archive::MANIFEST_FILE));
        for f in &files {
            self.inner.delete(f).await.map_err(self.err())?;
        }
        if let Some(dir) = &self.local {
            let _ = std::fs::remove_dir(dir.join(name));
        }
        Ok(files.len())
    }
}

fn split(prefix: &str) -> Vec<String> {
    prefix.split('/').filter(|p| !p.is_empty()).map(str::to_string).collect()
}
