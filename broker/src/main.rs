use clap::Parser;
use tracing::info;
use tracing_subscriber::EnvFilter;

use chronik::config::Config;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CHRONIK_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = chronik::server::start(config).await?;
        wait_for_termination().await?;
        info!("shutting down: answering in-flight requests, then syncing files");
        server.shutdown().await?;
        info!("shut down cleanly");
        Ok(())
    })
}

async fn wait_for_termination() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
