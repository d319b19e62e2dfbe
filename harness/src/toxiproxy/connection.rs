//! One proxied connection: dial the upstream, run both links (upstream: client to server,
//! downstream: server to client), and close both sockets when either link ends or the proxy is
//! disabled.
//!
//! As in Toxiproxy, the end of one direction closes the whole connection (there are no
//! half-closed proxied connections). A reset (`reset_peer`) closes both sockets with
//! `SO_LINGER` 0, so both the client and the server get a TCP RST (Toxiproxy resets only the
//! side the toxic reads from; resetting both makes the fault the same whichever way it is on).
//! The sockets are split by borrowing, not into owned halves: dropping an owned write half
//! would send a FIN before the RST.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::link::{self, LinkEnd};
use super::toxic::{Stream, ToxicSnapshot};

/// How long dialing the upstream may take before the client's connection is closed.
pub const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Proxies `client` to `upstream` until either side closes, a toxic ends the connection, or
/// `cancel` fires (the proxy was disabled or deleted).
pub async fn run(
    client: TcpStream,
    upstream: String,
    toxics: watch::Receiver<ToxicSnapshot>,
    cancel: CancellationToken,
) {
    let dial = tokio::time::timeout(
        Duration::from_millis(UPSTREAM_CONNECT_TIMEOUT_MS),
        TcpStream::connect(&upstream),
    );
    let server = tokio::select! {
        () = cancel.cancelled() => return,
        dialed = dial => match dialed {
            Ok(Ok(server)) => server,
            Ok(Err(error)) => {
                tracing::debug!(%upstream, %error, "proxy: cannot reach the upstream");
                return;
            }
            Err(_) => {
                tracing::debug!(%upstream, "proxy: dialing the upstream timed out");
                return;
            }
        },
    };
    proxy(client, server, toxics, cancel).await;
}

async fn proxy(
    mut client: TcpStream,
    mut server: TcpStream,
    toxics: watch::Receiver<ToxicSnapshot>,
    cancel: CancellationToken,
) {
    // Small writes (slicer pieces, Kafka requests) go out at once, as Toxiproxy's Go sockets do.
    for socket in [&client, &server] {
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "proxy: cannot set TCP_NODELAY");
        }
    }
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let upstream = link::run(client_read, server_write, toxics.clone(), Stream::Upstream);
        let downstream = link::run(server_read, client_write, toxics, Stream::Downstream);
        tokio::select! {
            () = cancel.cancelled() => None,
            end = upstream => Some(end),
            end = downstream => Some(end),
        }
    };
    tracing::debug!(?end, "proxy: connection closes");
    if end == Some(LinkEnd::ToxicReset) {
        for socket in [&client, &server] {
            if let Err(error) = socket.set_zero_linger() {
                tracing::debug!(%error, "proxy: cannot set SO_LINGER 0 for a reset");
            }
        }
    }
}
