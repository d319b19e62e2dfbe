//! chronik-bench: drives Kafka-compatible brokers with real clients and measures them.

pub mod analysis;
pub mod broker_process;
pub mod cluster;
pub mod compare;
pub mod failover;
pub mod faults;
pub mod idle_memory;
pub mod network;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod suite;
pub mod throughput;
pub mod toxiproxy;
pub mod workload;

/// Prints a report as pretty JSON on standard output.
pub fn print_json(report: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).expect("reports serialize")
    );
}
