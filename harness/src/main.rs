use clap::{Parser, Subcommand};

use chronik_bench::{compare, failover, idle_memory, throughput, toxiproxy};

#[derive(Parser)]
#[command(
    name = "chronik-bench",
    version,
    about = "Chaos and performance bench for Kafka-compatible brokers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce as fast as acknowledged, consume it all back, report rates and broker memory.
    Throughput(throughput::ThroughputArgs),
    /// Kill the leader of a partition repeatedly under load; report the unavailability.
    Failover(failover::FailoverArgs),
    /// Resident memory of one broker holding many idle partition replicas.
    IdleMemory(idle_memory::IdleMemoryArgs),
    /// Compare two run reports (report.json): what changed, and whether it regressed.
    Compare(compare::CompareArgs),
    /// Run the built-in Toxiproxy-API-compatible fault proxy until Ctrl-C.
    Toxiproxy(toxiproxy::ToxiproxyArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Throughput(args) => {
            let report = throughput::run(&args)?;
            throughput::print_report(&report, args.json);
        }
        Command::Failover(args) => {
            let report = failover::run(&args)?;
            failover::print_report(&report, args.json);
        }
        Command::IdleMemory(args) => {
            let report = idle_memory::run(&args)?;
            chronik_bench::print_json(&report);
        }
        Command::Compare(args) => std::process::exit(compare::run(&args)),
        Command::Toxiproxy(args) => toxiproxy::run_in_foreground(&args)?,
    }
    Ok(())
}
