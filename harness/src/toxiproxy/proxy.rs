//! One proxy: its addresses, its toxics, and while enabled a listener whose accepted
//! connections are proxied to the upstream.
//!
//! Enabled means listening: enabling binds the listen address (the first bind of port 0 fixes
//! the real port, which the proxy then keeps, so re-enabling listens where clients were told to
//! connect); disabling closes the listener and every connection, and returns once they are
//! closed, so a partition is in place when the API answers. Connections are tasks of the
//! proxy's `TaskTracker` and stop on its `CancellationToken`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection;
use super::error::ApiError;
use super::toxic::{ToxicList, ToxicSnapshot};

/// The most connections one proxy carries at once; more are closed as they arrive.
pub const CONNECTIONS_MAX: usize = 4096;
/// How long disabling waits for the listener and connections to close.
pub const STOP_TIMEOUT_MS: u64 = 5_000;
/// How long the listener pauses after a failed accept (out of file descriptors, say).
const ACCEPT_RETRY_DELAY_MS: u64 = 50;

/// The tasks of an enabled proxy.
#[derive(Debug)]
struct Running {
    cancel: CancellationToken,
    tasks: TaskTracker,
}

#[derive(Debug)]
pub struct Proxy {
    name: String,
    /// As given, until the first bind; then the bound address.
    listen: String,
    upstream: String,
    toxics: ToxicList,
    running: Option<Running>,
}

impl Proxy {
    /// A disabled proxy; `start` enables it.
    pub fn new(name: String, listen: String, upstream: String) -> Self {
        Self {
            name,
            listen,
            upstream,
            toxics: ToxicList::default(),
            running: None,
        }
    }

    pub fn listen(&self) -> &str {
        &self.listen
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    pub fn is_enabled(&self) -> bool {
        self.running.is_some()
    }

    pub fn toxics_mut(&mut self) -> &mut ToxicList {
        &mut self.toxics
    }

    /// The proxy as the API shows it.
    pub fn view(&self) -> Value {
        json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.is_enabled(),
            "toxics": self.toxics.views(),
        })
    }

    /// Enables the proxy: listens and accepts connections. Nothing if already enabled.
    pub async fn start(&mut self) -> Result<(), ApiError> {
        if self.running.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(&self.listen)
            .await
            .map_err(|error| ApiError::cannot_listen(&self.listen, &error))?;
        if let Ok(address) = listener.local_addr() {
            self.listen = address.to_string();
        }
        tracing::debug!(proxy = %self.name, listen = %self.listen, upstream = %self.upstream, "proxy enabled");
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(accept(
            listener,
            self.upstream.clone(),
            self.toxics.subscribe(),
            cancel.clone(),
            tasks.clone(),
        ));
        self.running = Some(Running { cancel, tasks });
        Ok(())
    }

    /// Disables the proxy: closes the listener and every connection, and waits for them (at
    /// most `STOP_TIMEOUT_MS`). Nothing if already disabled.
    pub async fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.cancel.cancel();
        running.tasks.close();
        let stopped =
            tokio::time::timeout(Duration::from_millis(STOP_TIMEOUT_MS), running.tasks.wait())
                .await;
        if stopped.is_err() {
            tracing::warn!(proxy = %self.name, "proxy: connections still closing after {STOP_TIMEOUT_MS} ms");
        }
        tracing::debug!(proxy = %self.name, "proxy disabled");
    }

    /// Changes the addresses and whether the proxy is enabled. A new address restarts the
    /// proxy (closing its connections), as in Toxiproxy.
    pub async fn update(
        &mut self,
        listen: Option<String>,
        upstream: Option<String>,
        enabled: Option<bool>,
    ) -> Result<(), ApiError> {
        let enabled = enabled.unwrap_or(self.is_enabled());
        let listen = listen.filter(|listen| *listen != self.listen);
        let upstream = upstream.filter(|upstream| *upstream != self.upstream);
        if listen.is_some() || upstream.is_some() {
            self.stop().await;
            self.listen = listen.unwrap_or(std::mem::take(&mut self.listen));
            self.upstream = upstream.unwrap_or(std::mem::take(&mut self.upstream));
        }
        if enabled {
            self.start().await
        } else {
            self.stop().await;
            Ok(())
        }
    }
}

/// Accepts connections until cancelled, then drops the listener (refusing new connections).
async fn accept(
    listener: TcpListener,
    upstream: String,
    toxics: watch::Receiver<ToxicSnapshot>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%upstream, "proxy: {CONNECTIONS_MAX} connections open; closing a new one");
                    continue;
                };
                let connection =
                    connection::run(client, upstream.clone(), toxics.clone(), cancel.clone());
                tasks.spawn(async move {
                    connection.await;
                    drop(slot);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "proxy: accepting a connection failed");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)) => {}
                }
            }
        }
    }
}
