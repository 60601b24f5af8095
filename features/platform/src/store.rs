//! Object storage behind a URL, used synchronously.
//!
//! Checkpoints and Parquet go to object storage through `object_store`:
//! `file://` (or a bare path) by default, `s3://`, `gs://` and `az://` with
//! credentials from the usual environment variables (`AWS_*`,
//! `GOOGLE_*`, `AZURE_*`), and `memory://` for tests. The engine runs on
//! plain threads, so this wraps the async API in a small runtime of its own.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

/// Object storage failed, or a URL is not usable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "`{url}` is not a storage URL: {why}. Use a directory, file://DIR, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX or memory://"
    )]
    /// A URL eddy cannot use.
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    #[error("object storage `{url}`: {source}. {}", hint(source).0)]
    /// Storage answered with an error, or did not answer.
    Io {
        /// The location.
        url: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },
    #[error("cannot start the object-store runtime: {0}")]
    /// The runtime that drives the async object store could not start.
    Runtime(std::io::Error),
}

impl StoreError {
    /// Who must act: the user (a URL, credentials, a bucket, a permission)
    /// or the environment (an endpoint that does not answer).
    pub fn blame(&self) -> crate::topic::Blame {
        match self {
            StoreError::BadUrl { .. } => crate::topic::Blame::User,
            StoreError::Io { source, .. } => hint(source).1,
            StoreError::Runtime(_) => crate::topic::Blame::Environment,
        }
    }
}

/// What to do about an object-store error, and who must do it. The
/// underlying messages are the HTTP client's; these name the setting.
fn hint(e: &object_store::Error) -> (&'static str, crate::topic::Blame) {
    use crate::topic::Blame::{Environment, User};
    let text = format!("{e:?} {e}");
    if text.contains("169.254.169.254") || text.contains("Missing credentials") {
        return (
            "No credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values for a server without authentication), or run where instance metadata provides them",
            User,
        );
    }
    if text.contains("URL scheme is not allowed") {
        return (
            "The endpoint is plain HTTP: give it as AWS_ENDPOINT_URL=http://... (eddy then allows HTTP) or set AWS_ALLOW_HTTP=true",
            User,
        );
    }
    if text.contains("NoSuchBucket") || text.contains("bucket does not exist") {
        return ("The bucket does not exist: create it first", User);
    }
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => (
            "The credentials are not allowed to do this: check them and the bucket's policy",
            User,
        ),
        _ if text.contains("AccessDenied")
            || text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch") =>
        {
            (
                "The credentials are not allowed to do this: check them and the bucket's policy",
                User,
            )
        }
        _ if text.contains("onnect")
            || text.contains("dns error")
            || text.contains("timed out")
            || text.contains("error sending request") =>
        {
            (
                "The endpoint does not answer: check AWS_ENDPOINT_URL (or the network) and that the server runs",
                Environment,
            )
        }
        _ => ("Check the location and its credentials", Environment),
    }
}

/// A location in object storage: a store and a prefix in it.
#[derive(Clone)]
pub struct Store {
    url: String,
    inner: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    rt: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

/// What a URL names, before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory on this machine (a bare path or `file://`).
    Local(PathBuf),
    /// `memory://`: in this process, for tests.
    Memory,
    /// `s3://`, `gs://` or `az://`.
    Remote(url::Url),
}

/// Parses a storage URL without touching storage.
pub fn parse_url(url: &str) -> Result<Location, StoreError> {
    let bad = |why: &str| StoreError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(bad("no directory after file://"));
        }
        return Ok(Location::Local(PathBuf::from(path)));
    }
    if url == "memory://" || url.starts_with("memory://") {
        return Ok(Location::Memory);
    }
    if !url.contains("://") {
        if url.is_empty() {
            return Err(bad("it is empty"));
        }
        return Ok(Location::Local(PathBuf::from(url)));
    }
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    match parsed.scheme() {
        "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" | "adl" | "azure" => {
            if parsed.host_str().unwrap_or("").is_empty() {
                return Err(bad("no bucket or container"));
            }
            Ok(Location::Remote(parsed))
        }
        other => Err(bad(&format!("unsupported scheme `{other}`"))),
    }
}

impl Store {
    /// Opens the location `url`; local directories are created.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            url: url.to_string(),
            source,
        };
        let (inner, prefix): (Arc<dyn ObjectStore>, ObjectPath) = match parse_url(url)? {
            Location::Local(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| StoreError::BadUrl {
                    url: url.to_string(),
                    why: format!("cannot create {}: {e}", dir.display()),
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(io)?;
                (Arc::new(fs), ObjectPath::default())
            }
            Location::Memory => (
                Arc::new(object_store::memory::InMemory::new()),
                ObjectPath::default(),
            ),
            Location::Remote(parsed) => {
                let prefix = ObjectPath::from(parsed.path().trim_start_matches('/'));
                let store: Arc<dyn ObjectStore> = match parsed.scheme() {
                    "s3" | "s3a" => {
                        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                        let mut builder = AmazonS3Builder::from_env().with_url(url);
                        // An endpoint given as http:// (a local S3-compatible
                        // server) is meant to be reached over HTTP.
                        if builder
                            .get_config_value(&AmazonS3ConfigKey::Endpoint)
                            .is_some_and(|e| e.starts_with("http://"))
                        {
                            builder = builder.with_allow_http(true);
                        }
                        Arc::new(builder.build().map_err(io)?)
                    }
                    "gs" => Arc::new(
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                            .with_url(url)
                            .build()
                            .map_err(io)?,
                    ),
                    _ => Arc::new(
                        object_store::azure::MicrosoftAzureBuilder::from_env()
                            .with_url(url)
                            .build()
                            .map_err(io)?,
                    ),
                };
                (store, prefix)
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::Runtime)?;
        Ok(Store {
            url: url.to_string(),
            inner,
            prefix,
            rt: Arc::new(rt),
        })
    }

    /// The URL this store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A store for a sub-directory.
    pub fn child(&self, name: &str) -> Store {
        let mut s = self.clone();
        s.prefix = self.path(name);
        s.url = format!("{}/{}", self.url.trim_end_matches('/'), name);
        s
    }

    fn path(&self, name: &str) -> ObjectPath {
        let mut p = self.prefix.clone();
        for part in name.split('/').filter(|s| !s.is_empty()) {
            p = p.child(part);
        }
        p
    }

    fn io(&self, source: object_store::Error) -> StoreError {
        StoreError::Io {
            url: self.url.clone(),
            source,
        }
    }

    /// Writes an object whole. Readers see the old or the new one, never
    /// half (object stores and `LocalFileSystem` write to a temporary and
    /// rename).
    pub fn put(&self, name: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(name);
        self.rt
            .block_on(self.inner.put(&path, Bytes::from(data).into()))
            .map(|_| ())
            .map_err(|e| self.io(e))
    }

    /// Checks that the location can be written, read back and cleaned up
    /// (`eddy validate`): a small probe object, deleted again.
    pub fn probe(&self) -> Result<(), StoreError> {
        let name = format!(".eddy-probe-{}", std::process::id());
        self.put(&name, b"eddy".to_vec())?;
        let back = self.get(&name)?;
        self.delete(&name)?;
        match back {
            Some(b) if b.as_ref() == b"eddy" => Ok(()),
            _ => Err(StoreError::BadUrl {
                url: self.url.clone(),
                why: "an object written there did not read back".into(),
            }),
        }
    }

    /// Reads an object; None if it does not exist.
    pub fn get(&self, name: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(name);
        self.rt
            .block_on(async {
                match self.inner.get(&path).await {
                    Ok(r) => r.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .map_err(|e| self.io(e))
    }

    /// Deletes an object; a missing one is fine.
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path(name);
        match self.rt.block_on(self.inner.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Names (relative to this store) of the objects under `dir`, sorted.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let base = self.path(dir);
        let prefix_len = self.prefix.as_ref().len();
        let mut names: Vec<String> = self
            .rt
            .block_on(
                self.inner
                    .list(Some(&base))
                    .map_ok(|m| m.location.to_string())
                    .try_collect::<Vec<_>>(),
            )
            .map_err(|e| self.io(e))?
            .into_iter()
            .map(|full| full[prefix_len..].trim_start_matches('/').to_string())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_why_not() {
        assert_eq!(
            parse_url("file://./eddy-data/x").unwrap(),
            Location::Local("./eddy-data/x".into())
        );
        assert_eq!(
            parse_url("out/dir").unwrap(),
            Location::Local("out/dir".into())
        );
        assert!(matches!(
            parse_url("s3://bucket/prefix").unwrap(),
            Location::Remote(_)
        ));
        let err = parse_url("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme `ftp`"), "{err}");
        assert!(parse_url("s3:///nobucket").is_err());
    }

    #[test]
    fn local_store_round_trips_lists_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap())
            .unwrap()
            .child("job");
        store.put("task-0/ckpt-1", b"one".to_vec()).unwrap();
        store.put("task-0/ckpt-2", b"two".to_vec()).unwrap();
        assert_eq!(
            store.get("task-0/ckpt-2").unwrap().unwrap().as_ref(),
            b"two"
        );
        assert_eq!(store.get("task-0/none").unwrap(), None);
        assert_eq!(
            store.list("task-0").unwrap(),
            vec!["task-0/ckpt-1", "task-0/ckpt-2"]
        );
        store.delete("task-0/ckpt-1").unwrap();
        store.delete("task-0/ckpt-1").unwrap();
        assert_eq!(store.list("task-0").unwrap(), vec!["task-0/ckpt-2"]);
    }
}
