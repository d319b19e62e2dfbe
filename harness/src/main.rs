use clap::{Parser, Subcommand};

use chronik_bench::cluster::docker::image;
use chronik_bench::{compare, failover, idle_memory, runner, suite, throughput, toxiproxy};

/// What `--help` says about exit codes.
const EXIT_CODES: &str = "Exit codes of run and suite (the verdict; a suite exits with its worst):
  0   pass         every check held
  10  correctness  lost, duplicated or reordered messages, or two reads disagreeing on an offset
  11  liveness     unavailability or recovery above the limit, or no progress after healing
  12  performance  throughput below or latency above the limit
  13  crash        a broker died when no fault killed it, or panicked
  2   error        a bad scenario, a bench failure, or Ctrl-C";

#[derive(Parser)]
#[command(
    name = "chronik-bench",
    version,
    about = "Chaos and performance bench for Kafka-compatible brokers",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario: launch the cluster, drive the workload, inject the faults, judge.
    #[command(after_help = EXIT_CODES)]
    Run(runner::RunArgs),
    /// Run every scenario in a folder and print one summary table.
    #[command(after_help = EXIT_CODES)]
    Suite(suite::SuiteArgs),
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
    /// Build the docker runtime's image from the local build (unless it exists); print its tag.
    Image(image::ImageArgs),
}

fn main() -> anyhow::Result<()> {
    // librdkafka reports every connection a fault breaks; the run's own lines say what matters.
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CHRONIK_BENCH_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,librdkafka=off,rdkafka::client=off")
        });
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    match Cli::parse().command {
        Command::Run(args) => {
            runner::handle_interrupts();
            let outcome = runner::run_file(&args.scenario, &args.options);
            std::process::exit(outcome.verdict.exit_code());
        }
        Command::Suite(args) => {
            runner::handle_interrupts();
            let verdict = match suite::run(&args) {
                Ok(verdict) => verdict,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    chronik_bench::report::Verdict::Error
                }
            };
            std::process::exit(verdict.exit_code());
        }
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
        Command::Image(args) => image::run(&args)?,
    }
    Ok(())
}
