//! Chronik's broker: a Kafka-wire-compatible message broker.
//!
//! The data path, front to back: [`server`] accepts connections, [`connection`] reads
//! size-capped frames, [`wire`] decodes them into typed requests, [`handlers`] has one function
//! per API key, [`partition`] is the replication boundary (a produce is proposed, committed and
//! applied there), [`storage`] is the segmented partition log. [`group`] is the consumer group
//! coordinator. See ARCHITECTURE.md for the invariants.

pub mod allocator;
pub mod broker;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod durable_file;
pub mod group;
pub mod handlers;
pub mod metrics;
pub mod misbehaviour;
pub mod page_cache;
pub mod partition;
pub mod producer_ids;
pub mod raft;
pub mod server;
pub mod snapshot;
pub mod storage;
pub mod transport;
pub mod wire;

#[global_allocator]
static ALLOCATOR: allocator::LazyLargeAllocator = allocator::LazyLargeAllocator;
