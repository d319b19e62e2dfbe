use clap::{Parser, Subcommand};

use chronik_bench::throughput;

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
    }
    Ok(())
}
