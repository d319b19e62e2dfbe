//! chronik-bench: drives Kafka-compatible brokers with real clients and measures them.

pub mod broker_process;
pub mod failover;
pub mod idle_memory;
pub mod scenario;
pub mod throughput;
