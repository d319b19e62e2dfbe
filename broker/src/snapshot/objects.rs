//! The object store as snapshots see it: whole objects under plain `/`-separated keys, put,
//! get, listed by key prefix, deleted.
//!
//! One [`SnapshotObjects`] wraps one `object_store` backend (a local directory, memory, S3, GCS
//! or Azure) and the operator's key prefix, so several clusters can share a bucket. Callers
//! never see the prefix: [`SnapshotObjects::put`] and [`SnapshotObjects::get`] take keys
//! relative to it and [`SnapshotObjects::list`] returns them that way.
//!
//! A key is one or more segments joined by `/`, like `groups/00000000000000000007/chunks/...`.
//! A segment is ASCII letters, digits and `-_.=+,:@`, and is neither `.` nor `..`. Anything else
//! is refused ([`ObjectError::InvalidKey`]) rather than escaped, so a key names the same object in
//! every backend and listing gives back exactly the key that was put.
//!
//! A put is atomic in every backend: a reader sees the old object or the whole new one. The
//! cloud stores promise it; the local backend gets it from `object_store`'s `LocalFileSystem`,
//! which writes a staging file beside the target (`<key>#<n>`) and renames it into place, and
//! which we open with fsync on, so a put that returned is on disk (file and directory entry).
//! Staging files a crash leaves behind are never listed or read as objects. A local object,
//! synced once put, leaves the page cache (see `crate::page_cache`): it is read only by a
//! node restoring or catching up.
//!
//! Left out: multipart uploads (objects are small enough to be one request: snapshot chunks are
//! written whole), conditional puts, and retries beyond `object_store`'s own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::settings::{Backend, ObjectStoreSettings};

/// Characters a key segment may hold besides ASCII letters and digits.
const KEY_PUNCTUATION: &str = "-_.=+,:@";

/// An object as listed: its key (relative to the store's prefix) and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object `{key}` not found in the object store")]
    NotFound { key: String },
    /// `message` names the store (see [`SnapshotObjects::describe`]) and what it answered.
    #[error("object store {operation} of `{key}` failed: {message}")]
    Store {
        operation: &'static str,
        key: String,
        message: String,
    },
    #[error("object store configuration: {0}")]
    Config(String),
    #[error("invalid object key `{key}`: {reason}")]
    InvalidKey { key: String, reason: String },
}

/// The snapshot object store: cheap to clone, shared by every task that uploads or downloads.
#[derive(Clone, Debug)]
pub struct SnapshotObjects {
    store: Arc<dyn ObjectStore>,
    /// Prepended to every key, without surrounding `/`; empty for none.
    prefix: String,
    /// Where the store is, without the prefix: `local:/dir`, `memory:`, `s3://bucket`, ...
    location: String,
    /// The local backend's directory (objects are files under it, at their full key).
    local_directory: Option<PathBuf>,
}

impl SnapshotObjects {
    /// Opens the store `settings` name. Nothing is contacted yet: a cloud store that cannot be
    /// reached fails at the first operation. The `local` backend creates its directory.
    pub fn open(
        settings: &ObjectStoreSettings,
        data_dir: &Path,
    ) -> Result<SnapshotObjects, ObjectError> {
        let prefix = normalise_prefix(&settings.prefix)?;
        let mut local_directory = None;
        let (store, location): (Arc<dyn ObjectStore>, String) = match settings.backend {
            Backend::Local => {
                let directory = settings.local_path(data_dir);
                std::fs::create_dir_all(&directory).map_err(|error| {
                    ObjectError::Config(format!(
                        "cannot create the local object store directory {}: {error}",
                        directory.display()
                    ))
                })?;
                let store = LocalFileSystem::new_with_prefix(&directory)
                    .map_err(|error| {
                        ObjectError::Config(format!(
                            "cannot open the local object store at {}: {error}",
                            directory.display()
                        ))
                    })?
                    .with_fsync(true);
                let canonical = std::fs::canonicalize(&directory).unwrap_or(directory);
                local_directory = Some(canonical.clone());
                (Arc::new(store), format!("local:{}", canonical.display()))
            }
            Backend::Memory => (Arc::new(InMemory::new()), "memory:".to_string()),
            Backend::S3 => {
                let bucket = required(&settings.s3_bucket, "s3", "S3_BUCKET")?;
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(&settings.s3_region);
                if let Some(endpoint) = &settings.s3_endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let store = builder.build().map_err(|error| {
                    ObjectError::Config(format!("cannot open S3 bucket {bucket}: {error}"))
                })?;
                (Arc::new(store), format!("s3://{bucket}"))
            }
            Backend::Gcs => {
                let bucket = required(&settings.gcs_bucket, "gcs", "GCS_BUCKET")?;
                let store = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|error| {
                        ObjectError::Config(format!("cannot open GCS bucket {bucket}: {error}"))
                    })?;
                (Arc::new(store), format!("gs://{bucket}"))
            }
            Backend::Azure => {
                let container = required(&settings.azure_container, "azure", "AZURE_CONTAINER")?;
                let store = MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .build()
                    .map_err(|error| {
                        ObjectError::Config(format!(
                            "cannot open Azure container {container}: {error}"
                        ))
                    })?;
                (Arc::new(store), format!("azure://{container}"))
            }
        };
        Ok(SnapshotObjects {
            store,
            prefix,
            location,
            local_directory,
        })
    }

    /// A fresh, empty store in memory, without a prefix. For tests.
    pub fn in_memory() -> SnapshotObjects {
        SnapshotObjects {
            store: Arc::new(InMemory::new()),
            prefix: String::new(),
            location: "memory:".to_string(),
            local_directory: None,
        }
    }

    /// The store and prefix, for logs: `local:/srv/objects/cluster-a`, `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            self.location.clone()
        } else if self.location.ends_with(':') {
            format!("{}{}", self.location, self.prefix)
        } else {
            format!("{}/{}", self.location, self.prefix)
        }
    }

    /// Stores `bytes` as the object `key`, replacing any object there, atomically.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|error| self.error("put", key, error))?;
        if let Some(directory) = &self.local_directory {
            let file = directory.join(path.as_ref());
            // Advice only; a failed task changes nothing.
            let _ =
                tokio::task::spawn_blocking(move || crate::page_cache::release_file(&file)).await;
        }
        Ok(())
    }

    /// The whole object `key`; [`ObjectError::NotFound`] when there is none.
    pub async fn get(&self, key: &str) -> Result<Bytes, ObjectError> {
        let path = self.path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|error| self.error("get", key, error))?;
        result
            .bytes()
            .await
            .map_err(|error| self.error("get", key, error))
    }

    /// Every object whose key starts with `prefix` (a plain string prefix, as S3 means it:
    /// `groups/7` matches `groups/7/a` and `groups/70/a`; end it with `/` for one "directory"),
    /// sorted by key. The empty prefix lists the whole store (within its configured prefix).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ObjectError> {
        if prefix.starts_with('/') {
            return Err(ObjectError::InvalidKey {
                key: prefix.to_string(),
                reason: "a list prefix must not start with `/`".to_string(),
            });
        }
        // object_store lists by whole path segments, so ask for the segments `prefix` surely
        // covers and filter the rest by string.
        let directory = match prefix.rfind('/') {
            Some(end) => &prefix[..end],
            None => "",
        };
        if !directory.is_empty() {
            validate_key(directory)?;
        }
        let listed_directory = self.full_key(directory);
        let listed_path = if listed_directory.is_empty() {
            None
        } else {
            Some(StorePath::from_iter(listed_directory.split('/')))
        };
        let metas: Vec<_> = self
            .store
            .list(listed_path.as_ref())
            .try_collect()
            .await
            .map_err(|error| self.error("list", prefix, error))?;
        let mut objects: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|meta| {
                let key = self.relative_key(meta.location.as_ref())?;
                key.starts_with(prefix).then(|| ObjectInfo {
                    key: key.to_string(),
                    size_bytes: meta.size,
                })
            })
            .collect();
        objects.sort_by(|left, right| left.key.cmp(&right.key));
        Ok(objects)
    }

    /// Removes the object `key`; removing one that does not exist is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.error("delete", key, error)),
        }
    }

    fn full_key(&self, key: &str) -> String {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => key.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{key}", self.prefix),
        }
    }

    /// The key of a listed store location, or None when it lies outside the prefix.
    fn relative_key<'a>(&self, location: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(location);
        }
        location
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
    }

    fn path(&self, key: &str) -> Result<StorePath, ObjectError> {
        validate_key(key)?;
        Ok(StorePath::from_iter(self.full_key(key).split('/')))
    }

    /// A store error as ours. Only a get's "not found" means the object is missing; from a put
    /// or a list it means the bucket or container is.
    fn error(&self, operation: &'static str, key: &str, error: object_store::Error) -> ObjectError {
        match error {
            object_store::Error::NotFound { .. } if operation == "get" => ObjectError::NotFound {
                key: key.to_string(),
            },
            error => ObjectError::Store {
                operation,
                key: key.to_string(),
                message: format!("{}: {error}", self.describe()),
            },
        }
    }
}

/// The operator's prefix without surrounding `/`, checked like a key.
fn normalise_prefix(prefix: &str) -> Result<String, ObjectError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    validate_key(trimmed).map_err(|error| {
        ObjectError::Config(format!(
            "OBJECT_STORE_PREFIX `{prefix}` is not usable: {error}"
        ))
    })?;
    Ok(trimmed.to_string())
}

fn required<'a>(
    value: &'a Option<String>,
    backend: &str,
    variable: &str,
) -> Result<&'a str, ObjectError> {
    match value.as_deref() {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ObjectError::Config(format!(
            "OBJECT_STORE_BACKEND={backend} needs {variable}"
        ))),
    }
}

fn validate_key(key: &str) -> Result<(), ObjectError> {
    let invalid = |reason: &str| ObjectError::InvalidKey {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(invalid("a key must not be empty"));
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err(invalid("a key must not start or end with `/` or hold `//`"));
        }
        if segment == "." || segment == ".." {
            return Err(invalid("a key segment must not be `.` or `..`"));
        }
        if let Some(character) = segment
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && !KEY_PUNCTUATION.contains(*c))
        {
            return Err(invalid(&format!(
                "`{character}` is not allowed (letters, digits and {KEY_PUNCTUATION} are)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::settings::tests::parse as settings;
    use super::*;

    fn local(directory: &Path, prefix: &str) -> SnapshotObjects {
        let path = directory.to_str().expect("utf-8 temp path");
        SnapshotObjects::open(
            &settings(&[
                "--object-store-backend",
                "local",
                "--object-store-path",
                path,
                "--object-store-prefix",
                prefix,
            ]),
            Path::new("unused"),
        )
        .expect("local store opens")
    }

    fn keys(objects: &[ObjectInfo]) -> Vec<&str> {
        objects.iter().map(|object| object.key.as_str()).collect()
    }

    /// The same behaviour is asked of every backend.
    async fn check_put_get_list_delete(objects: &SnapshotObjects) {
        let chunk = "groups/00000000000000000007/chunks/00000000000000000002.zst";
        objects
            .put(chunk, Bytes::from_static(b"second"))
            .await
            .unwrap();
        objects
            .put(
                "groups/00000000000000000007/chunks/00000000000000000001.zst",
                Bytes::from_static(b"first"),
            )
            .await
            .unwrap();
        objects
            .put(
                "groups/00000000000000000070/manifest.json",
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        objects
            .put("groups/00000000000000000007/manifest.json", Bytes::new())
            .await
            .unwrap();

        assert_eq!(&objects.get(chunk).await.unwrap()[..], b"second");
        objects
            .put(chunk, Bytes::from_static(b"replaced"))
            .await
            .unwrap();
        assert_eq!(&objects.get(chunk).await.unwrap()[..], b"replaced");
        assert!(objects
            .get("groups/00000000000000000007/manifest.json")
            .await
            .unwrap()
            .is_empty());

        let group_seven = objects.list("groups/00000000000000000007/").await.unwrap();
        assert_eq!(
            group_seven,
            vec![
                ObjectInfo {
                    key: "groups/00000000000000000007/chunks/00000000000000000001.zst".into(),
                    size_bytes: 5,
                },
                ObjectInfo {
                    key: "groups/00000000000000000007/chunks/00000000000000000002.zst".into(),
                    size_bytes: 8,
                },
                ObjectInfo {
                    key: "groups/00000000000000000007/manifest.json".into(),
                    size_bytes: 0,
                },
            ]
        );
        // A string prefix, not only whole segments: 18 zeros begin both group ids.
        assert_eq!(
            keys(&objects.list("groups/000000000000000000").await.unwrap()),
            vec![
                "groups/00000000000000000007/chunks/00000000000000000001.zst",
                "groups/00000000000000000007/chunks/00000000000000000002.zst",
                "groups/00000000000000000007/manifest.json",
                "groups/00000000000000000070/manifest.json",
            ]
        );
        assert_eq!(objects.list("").await.unwrap().len(), 4);
        assert_eq!(objects.list("gr").await.unwrap().len(), 4);
        assert!(objects.list("nothing/here/").await.unwrap().is_empty());

        match objects
            .get("groups/00000000000000000008/manifest.json")
            .await
        {
            Err(ObjectError::NotFound { key }) => {
                assert_eq!(key, "groups/00000000000000000008/manifest.json")
            }
            other => panic!("expected NotFound, got {other:?}"),
        }

        objects.delete(chunk).await.unwrap();
        assert!(matches!(
            objects.get(chunk).await,
            Err(ObjectError::NotFound { .. })
        ));
        objects.delete(chunk).await.unwrap();
        objects.delete("never/written").await.unwrap();
        assert_eq!(
            keys(&objects.list("groups/00000000000000000007/").await.unwrap()),
            vec![
                "groups/00000000000000000007/chunks/00000000000000000001.zst",
                "groups/00000000000000000007/manifest.json",
            ]
        );
    }

    async fn check_prefix_isolation(first: &SnapshotObjects, second: &SnapshotObjects) {
        first
            .put("groups/1/manifest.json", Bytes::from_static(b"first"))
            .await
            .unwrap();
        second
            .put("groups/1/manifest.json", Bytes::from_static(b"second"))
            .await
            .unwrap();
        assert_eq!(
            &first.get("groups/1/manifest.json").await.unwrap()[..],
            b"first"
        );
        assert_eq!(
            &second.get("groups/1/manifest.json").await.unwrap()[..],
            b"second"
        );
        assert_eq!(
            keys(&first.list("").await.unwrap()),
            vec!["groups/1/manifest.json"]
        );
        first.delete("groups/1/manifest.json").await.unwrap();
        assert!(first.list("").await.unwrap().is_empty());
        assert_eq!(second.list("").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn memory_store_puts_gets_lists_and_deletes() {
        check_put_get_list_delete(&SnapshotObjects::in_memory()).await;
    }

    #[tokio::test]
    async fn local_store_puts_gets_lists_and_deletes() {
        let directory = tempfile::tempdir().unwrap();
        check_put_get_list_delete(&local(directory.path(), "")).await;
    }

    #[tokio::test]
    async fn local_store_with_prefix_puts_gets_lists_and_deletes() {
        let directory = tempfile::tempdir().unwrap();
        let objects = local(directory.path(), "/cluster-a/");
        check_put_get_list_delete(&objects).await;
        assert!(directory.path().join("cluster-a/groups").is_dir());
    }

    #[tokio::test]
    async fn prefixes_isolate_stores_sharing_a_directory() {
        let directory = tempfile::tempdir().unwrap();
        // `cluster` is a string prefix of `cluster-b`; keys must not leak between them.
        check_prefix_isolation(
            &local(directory.path(), "cluster"),
            &local(directory.path(), "cluster-b"),
        )
        .await;
    }

    #[tokio::test]
    async fn prefixes_isolate_stores_sharing_memory() {
        let shared = SnapshotObjects::in_memory();
        let first = SnapshotObjects {
            prefix: "cluster".into(),
            ..shared.clone()
        };
        let second = SnapshotObjects {
            prefix: "cluster-b".into(),
            ..shared
        };
        check_prefix_isolation(&first, &second).await;
    }

    #[tokio::test]
    async fn a_local_object_leaves_the_page_cache_once_put() {
        let directory = crate::page_cache::residency::disk_directory();
        let objects = local(directory.path(), "cluster");
        let bytes = Bytes::from(vec![3u8; 1024 * 1024]);
        objects.put("groups/1/chunk", bytes.clone()).await.unwrap();
        let file = directory.path().join("cluster/groups/1/chunk");
        let cached = crate::page_cache::residency::cached_pages(&file);
        assert_eq!(cached.len(), 256);
        assert!(cached.iter().all(|page| !*page));
        assert_eq!(objects.get("groups/1/chunk").await.unwrap(), bytes);
    }

    #[tokio::test]
    async fn local_put_leaves_only_the_object_and_ignores_staging_files() {
        let directory = tempfile::tempdir().unwrap();
        let objects = local(directory.path(), "");
        objects
            .put("groups/1/manifest.json", Bytes::from_static(b"whole"))
            .await
            .unwrap();
        let names: Vec<String> = std::fs::read_dir(directory.path().join("groups/1"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["manifest.json"]);

        // What a put interrupted before its rename leaves behind is not an object.
        std::fs::write(directory.path().join("groups/1/chunk#1"), b"half").unwrap();
        assert_eq!(
            keys(&objects.list("").await.unwrap()),
            vec!["groups/1/manifest.json"]
        );
        assert!(matches!(
            objects.get("groups/1/chunk").await,
            Err(ObjectError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn invalid_keys_are_refused() {
        let objects = SnapshotObjects::in_memory();
        for key in [
            "",
            "/groups/1",
            "groups/1/",
            "groups//1",
            "groups/../1",
            "groups/./1",
            "chunk#1",
            "with space",
            "percent%41",
            "ünicode",
        ] {
            assert!(
                matches!(
                    objects.put(key, Bytes::new()).await,
                    Err(ObjectError::InvalidKey { .. })
                ),
                "{key:?} was accepted"
            );
        }
        assert!(matches!(
            objects.list("/groups").await,
            Err(ObjectError::InvalidKey { .. })
        ));
        objects
            .put("a-b_c.d=e+f,g:h@i/0123", Bytes::new())
            .await
            .unwrap();
    }

    #[test]
    fn missing_settings_are_named() {
        for (backend, variable) in [
            ("s3", "S3_BUCKET"),
            ("gcs", "GCS_BUCKET"),
            ("azure", "AZURE_CONTAINER"),
        ] {
            let error = SnapshotObjects::open(
                &settings(&["--object-store-backend", backend]),
                Path::new("data"),
            )
            .unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "object store configuration: OBJECT_STORE_BACKEND={backend} needs {variable}"
                )
            );
        }
        let error = SnapshotObjects::open(
            &settings(&[
                "--object-store-backend",
                "memory",
                "--object-store-prefix",
                "a//b",
            ]),
            Path::new("data"),
        )
        .unwrap_err();
        assert!(matches!(error, ObjectError::Config(_)), "{error}");
    }

    #[test]
    fn describe_names_store_and_prefix() {
        let directory = tempfile::tempdir().unwrap();
        let canonical = std::fs::canonicalize(directory.path()).unwrap();
        assert_eq!(
            local(directory.path(), "").describe(),
            format!("local:{}", canonical.display())
        );
        assert_eq!(
            local(directory.path(), "cluster-a").describe(),
            format!("local:{}/cluster-a", canonical.display())
        );
        assert_eq!(SnapshotObjects::in_memory().describe(), "memory:");
        let s3 = SnapshotObjects::open(
            &settings(&[
                "--object-store-backend",
                "s3",
                "--s3-bucket",
                "snapshots",
                "--s3-endpoint",
                "http://127.0.0.1:1",
                "--object-store-prefix",
                "cluster-a",
            ]),
            Path::new("data"),
        )
        .unwrap();
        assert_eq!(s3.describe(), "s3://snapshots/cluster-a");
    }

    #[test]
    fn local_default_directory_is_created_beside_the_data_directory() {
        let directory = tempfile::tempdir().unwrap();
        let data_dir = directory.path().join("node-1");
        let objects = SnapshotObjects::open(&settings(&[]), &data_dir).expect("local store opens");
        assert!(directory.path().join("object-store").is_dir());
        assert!(objects.describe().ends_with("/object-store"));
    }
}
