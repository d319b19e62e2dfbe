//! Where snapshot objects are kept: the `--object-store-*`, `S3_*`, `GCS_*` and `AZURE_*`
//! settings, flattened into the broker's one [`Config`](crate::config::Config).
//!
//! Credentials are not settings here: each cloud backend reads its own environment the usual
//! way (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...;
//! `GOOGLE_SERVICE_ACCOUNT`, ...; `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
//! ...), so they never appear on a command line.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

/// Name of the directory, beside the data directory, that the `local` backend uses when
/// `--object-store-path` is not given.
pub const DEFAULT_LOCAL_DIRECTORY: &str = "object-store";

/// Which object store holds the snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// A directory on this machine (`--object-store-path`).
    Local,
    /// Process memory: gone when the broker stops. For tests.
    Memory,
    /// Amazon S3 or an S3-compatible server (`S3_BUCKET`, `S3_ENDPOINT`, `S3_REGION`).
    S3,
    /// Google Cloud Storage (`GCS_BUCKET`).
    Gcs,
    /// Azure Blob Storage (`AZURE_CONTAINER`).
    Azure,
}

#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Object store (snapshots)")]
pub struct ObjectStoreSettings {
    /// Where snapshots are uploaded: local, memory, s3, gcs or azure.
    #[arg(
        long = "object-store-backend",
        env = "OBJECT_STORE_BACKEND",
        value_enum,
        default_value_t = Backend::Local
    )]
    pub backend: Backend,

    /// Directory of the `local` backend. Default: `object-store` beside the data directory.
    /// The nodes of a cluster on one machine should share one directory, so that any node can
    /// read the snapshots another uploaded, as they would from a shared bucket.
    #[arg(long = "object-store-path", env = "OBJECT_STORE_PATH")]
    pub path: Option<PathBuf>,

    /// Key prefix inside the store, so several clusters can share one bucket or directory.
    #[arg(
        long = "object-store-prefix",
        env = "OBJECT_STORE_PREFIX",
        default_value = ""
    )]
    pub prefix: String,

    /// Bucket of the `s3` backend.
    #[arg(long = "s3-bucket", env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// Endpoint of an S3-compatible server instead of AWS, e.g. `http://127.0.0.1:9000`
    /// (plain http is allowed only when the endpoint says `http://`).
    #[arg(long = "s3-endpoint", env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Region of the `s3` backend (this, not `AWS_REGION`, decides).
    #[arg(long = "s3-region", env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Bucket of the `gcs` backend.
    #[arg(long = "gcs-bucket", env = "GCS_BUCKET")]
    pub gcs_bucket: Option<String>,

    /// Container of the `azure` backend.
    #[arg(long = "azure-container", env = "AZURE_CONTAINER")]
    pub azure_container: Option<String>,
}

impl ObjectStoreSettings {
    /// The directory of the `local` backend: `--object-store-path` when given, else
    /// `object-store` beside `data_dir` (in the working directory when `data_dir` has no
    /// parent).
    pub fn local_path(&self, data_dir: &Path) -> PathBuf {
        if let Some(path) = &self.path {
            return path.clone();
        }
        match data_dir.parent() {
            Some(parent) => parent.join(DEFAULT_LOCAL_DIRECTORY),
            None => Path::new(".").join(DEFAULT_LOCAL_DIRECTORY),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        settings: ObjectStoreSettings,
    }

    /// Settings as the flags `arguments` give them (shared with the store's tests).
    pub(crate) fn parse(arguments: &[&str]) -> ObjectStoreSettings {
        let mut all = vec!["test"];
        all.extend_from_slice(arguments);
        Command::try_parse_from(all)
            .expect("valid arguments")
            .settings
    }

    #[test]
    fn flags_parse_into_settings() {
        let settings = parse(&[
            "--object-store-backend",
            "s3",
            "--object-store-prefix",
            "cluster-a",
            "--s3-bucket",
            "snapshots",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
            "--s3-region",
            "eu-west-1",
        ]);
        assert_eq!(settings.backend, Backend::S3);
        assert_eq!(settings.prefix, "cluster-a");
        assert_eq!(settings.s3_bucket.as_deref(), Some("snapshots"));
        assert_eq!(
            settings.s3_endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(settings.s3_region, "eu-west-1");
    }

    #[test]
    fn backend_names_are_lowercase() {
        for (name, backend) in [
            ("local", Backend::Local),
            ("memory", Backend::Memory),
            ("s3", Backend::S3),
            ("gcs", Backend::Gcs),
            ("azure", Backend::Azure),
        ] {
            assert_eq!(parse(&["--object-store-backend", name]).backend, backend);
        }
        assert!(Command::try_parse_from(["test", "--object-store-backend", "ftp"]).is_err());
    }

    #[test]
    fn local_path_defaults_beside_the_data_directory() {
        let settings = parse(&["--object-store-backend", "local"]);
        assert_eq!(
            settings.local_path(Path::new("/var/lib/chronik/node-1")),
            PathBuf::from("/var/lib/chronik/object-store")
        );
        assert_eq!(
            settings.local_path(Path::new("data")),
            PathBuf::from("object-store")
        );
        assert_eq!(
            settings.local_path(Path::new("/")),
            PathBuf::from("./object-store")
        );
    }

    #[test]
    fn local_path_given_wins() {
        let settings = parse(&["--object-store-path", "/srv/snapshots"]);
        assert_eq!(
            settings.local_path(Path::new("/var/lib/chronik/node-1")),
            PathBuf::from("/srv/snapshots")
        );
    }
}
