//! The listeners and the shutdown plumbing.
//!
//! `start` opens the broker's state, binds the Kafka and metrics listeners and returns a
//! handle. `RunningServer::shutdown` stops accepting, lets every connection answer what it has
//! already read, then syncs and closes the broker's files.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::Config;
use crate::{connection, metrics};

/// How long shutdown waits for connections to finish what they already read.
pub const SHUTDOWN_GRACE_MS: u64 = 10_000;

pub struct RunningServer {
    pub broker: Arc<Broker>,
    pub kafka_address: SocketAddr,
    pub metrics_address: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<JoinSet<()>>,
}

pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    metrics::handle();
    let kafka_listener = TcpListener::bind(config.listen).await?;
    let metrics_listener = TcpListener::bind(config.metrics_listen).await?;
    let kafka_address = kafka_listener.local_addr()?;
    let metrics_address = metrics_listener.local_addr()?;
    let mut config = config;
    if config.advertised_addr.is_none() {
        config.advertised_addr = Some(kafka_address.to_string());
    }
    let broker = Broker::open(config).await?;
    let (shutdown, shutdown_receiver) = watch::channel(false);
    tokio::spawn(metrics::serve_http(
        metrics_listener,
        Arc::downgrade(&broker),
        shutdown_receiver.clone(),
    ));
    let accept_task = tokio::spawn(accept_connections(
        broker.clone(),
        kafka_listener,
        shutdown_receiver,
    ));
    info!(
        kafka = %kafka_address,
        metrics = %metrics::describe(metrics_address),
        data_dir = %broker.config.data_dir.display(),
        "chronik-server is serving"
    );
    Ok(RunningServer {
        broker,
        kafka_address,
        metrics_address,
        shutdown,
        accept_task,
    })
}

async fn accept_connections(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> JoinSet<()> {
    let connection_slots = Arc::new(Semaphore::new(broker.config.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return connections,
        };
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = connection_slots.clone().try_acquire_owned() else {
            warn!(%peer, limit = broker.config.max_connections, "connection limit reached; closing");
            continue;
        };
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            metrics::connection_opened();
            connection::serve(broker, stream, shutdown).await;
            metrics::connection_closed();
            drop(slot);
        });
    }
}

impl RunningServer {
    /// Stops accepting, drains connections, syncs and closes the broker.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        if let Ok(mut connections) = self.accept_task.await {
            let drained = tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), async {
                while connections.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                warn!("connections did not finish within the grace period; closing them");
                connections.abort_all();
            }
        }
        self.broker.close().await
    }
}
