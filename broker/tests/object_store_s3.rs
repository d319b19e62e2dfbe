//! The snapshot object store against a real S3-compatible server (moto), configured the way an
//! operator would: `OBJECT_STORE_BACKEND=s3`, `S3_BUCKET`, `S3_ENDPOINT`, credentials in the
//! AWS environment variables.

#[path = "support/moto.rs"]
mod moto;

use std::path::Path;

use bytes::Bytes;
use chronik::config::Config;
use chronik::snapshot::objects::{ObjectError, ObjectInfo, SnapshotObjects};
use clap::Parser;

const BUCKET: &str = "chronik-snapshots";

fn keys(objects: &[ObjectInfo]) -> Vec<&str> {
    objects.iter().map(|object| object.key.as_str()).collect()
}

/// Opens the store from the broker's own configuration, environment first, then `flags`.
fn open(flags: &[&str]) -> SnapshotObjects {
    let mut arguments = vec!["chronik-server"];
    arguments.extend_from_slice(flags);
    let config = Config::parse_from(arguments);
    SnapshotObjects::open(&config.object_store, Path::new("unused")).expect("the s3 store opens")
}

#[tokio::test]
async fn s3_backend_puts_gets_lists_and_deletes() {
    let server = moto::MotoServer::start();
    server.create_bucket(BUCKET);
    // Set once, before any client exists, and the same for every test in this process.
    std::env::set_var("OBJECT_STORE_BACKEND", "s3");
    std::env::set_var("S3_BUCKET", BUCKET);
    std::env::set_var("S3_ENDPOINT", server.endpoint());
    std::env::set_var("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY);

    let objects = open(&[]);
    assert_eq!(objects.describe(), format!("s3://{BUCKET}"));

    let first = "groups/00000000000000000007/chunks/00000000000000000001.zst";
    let second = "groups/00000000000000000007/chunks/00000000000000000002.zst";
    let manifest = "groups/00000000000000000007/manifest.json";
    let other_group = "groups/00000000000000000070/manifest.json";
    objects
        .put(second, Bytes::from_static(b"second"))
        .await
        .unwrap();
    objects
        .put(first, Bytes::from_static(b"first"))
        .await
        .unwrap();
    objects.put(manifest, Bytes::new()).await.unwrap();
    objects
        .put(other_group, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let large = Bytes::from(vec![0xa5u8; 6 * 1024 * 1024]);
    objects.put("large/object", large.clone()).await.unwrap();

    assert_eq!(&objects.get(first).await.unwrap()[..], b"first");
    assert_eq!(objects.get("large/object").await.unwrap(), large);
    objects
        .put(second, Bytes::from_static(b"replaced"))
        .await
        .unwrap();
    assert_eq!(&objects.get(second).await.unwrap()[..], b"replaced");
    assert!(objects.get(manifest).await.unwrap().is_empty());

    assert_eq!(
        objects.list("groups/00000000000000000007/").await.unwrap(),
        vec![
            ObjectInfo {
                key: first.into(),
                size_bytes: 5
            },
            ObjectInfo {
                key: second.into(),
                size_bytes: 8
            },
            ObjectInfo {
                key: manifest.into(),
                size_bytes: 0
            },
        ]
    );
    assert_eq!(
        keys(&objects.list("groups/").await.unwrap()),
        vec![first, second, manifest, other_group]
    );
    assert_eq!(objects.list("").await.unwrap().len(), 5);

    match objects
        .get("groups/00000000000000000008/manifest.json")
        .await
    {
        Err(ObjectError::NotFound { key }) => {
            assert_eq!(key, "groups/00000000000000000008/manifest.json")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }

    objects.delete(second).await.unwrap();
    objects.delete(second).await.unwrap();
    objects.delete("never/written").await.unwrap();
    assert!(matches!(
        objects.get(second).await,
        Err(ObjectError::NotFound { .. })
    ));
    assert_eq!(
        keys(&objects.list("groups/00000000000000000007/").await.unwrap()),
        vec![first, manifest]
    );

    // Two clusters sharing the bucket under their own prefixes see only their own objects.
    let cluster_a = open(&["--object-store-prefix", "cluster-a"]);
    let cluster_b = open(&["--object-store-prefix", "cluster-a-b"]);
    assert_eq!(cluster_a.describe(), format!("s3://{BUCKET}/cluster-a"));
    cluster_a
        .put(manifest, Bytes::from_static(b"a"))
        .await
        .unwrap();
    cluster_b
        .put(manifest, Bytes::from_static(b"b"))
        .await
        .unwrap();
    assert_eq!(&cluster_a.get(manifest).await.unwrap()[..], b"a");
    assert_eq!(&cluster_b.get(manifest).await.unwrap()[..], b"b");
    assert_eq!(keys(&cluster_a.list("").await.unwrap()), vec![manifest]);
    assert!(matches!(
        cluster_a.get(first).await,
        Err(ObjectError::NotFound { .. })
    ));
    cluster_a.delete(manifest).await.unwrap();
    assert!(cluster_a.list("").await.unwrap().is_empty());
    assert_eq!(keys(&cluster_b.list("").await.unwrap()), vec![manifest]);
    // The unprefixed view sees every object in the bucket, keys as stored.
    assert_eq!(
        keys(&objects.list("cluster-a-b/").await.unwrap()),
        vec!["cluster-a-b/groups/00000000000000000007/manifest.json"]
    );

    // A bucket that does not exist is an error naming the key and the store.
    let missing = open(&["--s3-bucket", "no-such-bucket"]);
    let error = missing
        .put(manifest, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains(manifest), "{message}");
    assert!(message.contains("s3://no-such-bucket"), "{message}");
}
