//! Snapshots leave the node through an object store: a local directory by default, or S3,
//! Google Cloud Storage or Azure Blob Storage.
//!
//! [`settings`] is what the operator chooses (backend, where, key prefix); [`objects`] is the
//! store itself, reduced to what snapshots need (whole-object put, get, list, delete under
//! plain `/`-separated keys); [`codec`] seals an object's bytes (compression, then a CRC-32 of
//! what is stored) and unseals them with every length and checksum checked and memory capped.
//!
//! On top: [`manifest`] names what one snapshot of a Raft group is made of;
//! [`partition_image`] uploads a partition's log as chunks and stages a downloaded one
//! (writing it around the page cache: [`uncached_write`]);
//! [`metadata_image`] does the same for the catalog and committed offsets (and keeps the
//! node's local metadata checkpoint); [`policy`] is when snapshots are taken and how many are
//! kept. The Raft side (when, who, install) is `crate::cluster::snapshots`.

pub mod codec;
pub mod error;
pub mod manifest;
pub mod metadata_image;
pub mod objects;
pub mod partition_image;
pub mod policy;
pub mod retention;
pub mod settings;
pub mod staging;
pub mod uncached_write;

#[cfg(test)]
mod staging_tests;
