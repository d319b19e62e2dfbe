//! Snapshots leave the node through an object store: a local directory by default, or S3,
//! Google Cloud Storage or Azure Blob Storage.
//!
//! [`settings`] is what the operator chooses (backend, where, key prefix); [`objects`] is the
//! store itself, reduced to what snapshots need (whole-object put, get, list, delete under
//! plain `/`-separated keys); [`codec`] seals an object's bytes (compression, then a CRC-32 of
//! what is stored) and unseals them with every length and checksum checked and memory capped.

pub mod codec;
pub mod objects;
pub mod settings;
