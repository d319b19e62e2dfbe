//! Raft replication: every partition, and the cluster metadata, is a Raft group (tikv's
//! raft-rs). [`multi_raft`] drives all groups of a node; [`log_store`] is their durable state
//! (raft-engine in [`engine_store`], memory for tests), with the newest entries cached in memory
//! in front of it ([`entry_cache`]); [`group_storage`] is raft-rs's read-only view of it.

pub mod engine_store;
pub mod entry_cache;
pub mod group_storage;
pub mod log_store;
pub mod logger;
pub mod multi_raft;
#[cfg(test)]
pub mod simulation;
