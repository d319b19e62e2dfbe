//! Running the server: `serve` on a listener until a shutdown token fires, in the background of
//! a process (`BuiltinToxiproxy`, on its own tokio runtime, so synchronous code can use it), or
//! in the foreground (`chronik-bench toxiproxy`, until Ctrl-C).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::api;
use super::registry::Registry;

/// Threads of the built-in server's runtime.
pub const RUNTIME_THREADS: usize = 2;
/// How long dropping the built-in server waits for its threads.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 2_000;
/// Where `chronik-bench toxiproxy` listens by default (Toxiproxy's port).
pub const DEFAULT_API_ADDRESS: &str = "127.0.0.1:8474";

/// Serves the API on `listener` until `shutdown` fires, then closes every proxy.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let served = axum::serve(listener, api::router(registry.clone()))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    registry.stop_all().await;
    served
}

/// The server running in this process, on a runtime of its own; dropping it shuts it down,
/// closing every proxy and connection.
#[derive(Debug)]
pub struct BuiltinToxiproxy {
    api_address: SocketAddr,
    shutdown: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BuiltinToxiproxy {
    /// Starts the server with its API on `listen` (port 0: any free port; see `api_address`).
    pub fn start(listen: SocketAddr) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("toxiproxy")
            .enable_all()
            .build()
            .context("cannot start the runtime of the built-in Toxiproxy")?;
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen on {listen} for the Toxiproxy API"))?;
        listener.set_nonblocking(true)?;
        let api_address = listener.local_addr()?;
        let listener = {
            let _runtime = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let shutdown = CancellationToken::new();
        let serving = shutdown.clone();
        runtime.spawn(async move {
            if let Err(error) = serve(listener, serving).await {
                tracing::error!(%error, "the built-in Toxiproxy stopped");
            }
        });
        tracing::debug!(%api_address, "built-in Toxiproxy started");
        Ok(Self {
            api_address,
            shutdown,
            runtime: Some(runtime),
        })
    }

    /// Where the API listens.
    pub fn api_address(&self) -> SocketAddr {
        self.api_address
    }

    /// The API's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.api_address)
    }
}

impl Drop for BuiltinToxiproxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(runtime) = self.runtime.take() {
            // Waiting is not allowed on a runtime's thread; there the tasks are dropped as the
            // threads wind down.
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(Duration::from_millis(SHUTDOWN_TIMEOUT_MS));
            }
        }
    }
}

/// `chronik-bench toxiproxy`: a Toxiproxy-API-compatible fault proxy, in the foreground.
#[derive(Clone, Debug, clap::Args)]
pub struct ToxiproxyArgs {
    /// Address of the REST API.
    #[arg(long, default_value = DEFAULT_API_ADDRESS)]
    pub listen: SocketAddr,
}

/// Serves the API on `args.listen` until Ctrl-C.
pub fn run_in_foreground(args: &ToxiproxyArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {} for the Toxiproxy API", args.listen))?;
        tracing::info!(
            "Toxiproxy API on http://{}; Ctrl-C stops it",
            listener.local_addr()?
        );
        let shutdown = CancellationToken::new();
        let interrupted = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.cancel();
            }
        });
        serve(listener, shutdown).await?;
        Ok(())
    })
}
