//! The inbound side: the listener accepts connections from peers' sender tasks, checks each
//! handshake, then reads frames and hands each one's envelopes to the bounded inbound channel.
//!
//! Nothing is ever written back. While the channel is full the connection task waits in
//! `send` and stops reading, so TCP pushes back on the sender (whose queue then sheds). A peer
//! has at most one live inbound connection: a newer handshake from the same node id
//! supersedes the older connection, so a sender that reconnected while its old connection was
//! stuck behind a full channel does not leave a second buffered frame behind.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::frame::{
    decode_envelopes, read_handshake, take_frame, FrameError, HandshakeError, READ_AHEAD_BYTES,
};
use super::InboundBatch;

/// Inbound connections open at once, handshaken or not; more are closed on accept.
pub const INBOUND_CONNECTIONS_MAX: usize = 256;
/// How long a new connection may take to send its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What every inbound connection task shares.
pub(super) struct Inbound {
    pub node_id: u64,
    pub cluster_id: String,
    pub peers: BTreeSet<u64>,
    pub frame_bytes_max: usize,
    pub deliver: mpsc::Sender<InboundBatch>,
    connections: Arc<Semaphore>,
    /// The live connection per peer: its sequence number and the signal that supersedes it.
    current: Mutex<HashMap<u64, (u64, Arc<Notify>)>>,
    next_sequence: AtomicU64,
}

impl Inbound {
    pub fn new(
        node_id: u64,
        cluster_id: String,
        peers: BTreeSet<u64>,
        frame_bytes_max: usize,
        deliver: mpsc::Sender<InboundBatch>,
    ) -> Self {
        Inbound {
            node_id,
            cluster_id,
            peers,
            frame_bytes_max,
            deliver,
            connections: Arc::new(Semaphore::new(INBOUND_CONNECTIONS_MAX)),
            current: Mutex::new(HashMap::new()),
            next_sequence: AtomicU64::new(0),
        }
    }

    /// Makes this connection the peer's live one, superseding any older one.
    fn register(&self, peer: u64) -> (u64, Arc<Notify>) {
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let signal = Arc::new(Notify::new());
        let previous = self
            .current
            .lock()
            .insert(peer, (sequence, Arc::clone(&signal)));
        if let Some((_, old)) = previous {
            old.notify_one();
        }
        (sequence, signal)
    }

    fn deregister(&self, peer: u64, sequence: u64) {
        let mut current = self.current.lock();
        if current
            .get(&peer)
            .is_some_and(|(live, _)| *live == sequence)
        {
            current.remove(&peer);
        }
    }
}

/// Accepts connections until aborted; dropping this future aborts every connection task.
pub(super) async fn run_listener(listener: TcpListener, inbound: Arc<Inbound>) {
    let mut tasks = JoinSet::new();
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "transport: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&inbound.connections).try_acquire_owned() else {
            warn!(%remote, limit = INBOUND_CONNECTIONS_MAX,
                "transport: too many inbound connections; closing the new one");
            continue;
        };
        let inbound = Arc::clone(&inbound);
        tasks.spawn(async move {
            serve_connection(&inbound, stream, remote).await;
            drop(permit);
        });
    }
}

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    #[error("no handshake within {HANDSHAKE_TIMEOUT:?}")]
    HandshakeTimeout,
    #[error("cluster id {theirs:?} is not this cluster's ({ours:?})")]
    WrongCluster { theirs: String, ours: String },
    #[error("node id {0} is not a configured peer")]
    UnknownPeer(u64),
}

#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("connection closed in the middle of a frame")]
    TruncatedFrame,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a newer connection from the same peer replaced it")]
    Superseded,
    #[error("the inbound channel's receiver is gone")]
    ReceiverGone,
}

async fn serve_connection(inbound: &Inbound, mut stream: TcpStream, remote: SocketAddr) {
    let from = match accept_handshake(inbound, &mut stream).await {
        Ok(from) => from,
        Err(refused) => {
            warn!(%remote, reason = %refused, "transport: refusing inbound connection");
            return;
        }
    };
    info!(peer = from, %remote, "transport: inbound connection from peer");
    let (sequence, superseded) = inbound.register(from);
    let ended = tokio::select! {
        ended = read_frames(inbound, &mut stream, from) => ended,
        _ = superseded.notified() => Err(Ended::Superseded),
    };
    inbound.deregister(from, sequence);
    match ended {
        Ok(()) => debug!(peer = from, %remote, "transport: peer closed its connection"),
        Err(error @ Ended::Frame(_)) => {
            warn!(peer = from, %remote, %error, "transport: closing inbound connection")
        }
        Err(error) => {
            debug!(peer = from, %remote, %error, "transport: inbound connection ended")
        }
    }
}

async fn accept_handshake(inbound: &Inbound, stream: &mut TcpStream) -> Result<u64, Refused> {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_handshake(stream))
        .await
        .map_err(|_| Refused::HandshakeTimeout)??;
    if handshake.cluster_id != inbound.cluster_id {
        return Err(Refused::WrongCluster {
            theirs: handshake.cluster_id,
            ours: inbound.cluster_id.clone(),
        });
    }
    if handshake.node_id == inbound.node_id || !inbound.peers.contains(&handshake.node_id) {
        return Err(Refused::UnknownPeer(handshake.node_id));
    }
    Ok(handshake.node_id)
}

/// Reads and delivers frames until the peer closes cleanly (`Ok`) or something goes wrong.
async fn read_frames(inbound: &Inbound, stream: &mut TcpStream, from: u64) -> Result<(), Ended> {
    let mut buffer = BytesMut::with_capacity(READ_AHEAD_BYTES);
    loop {
        while let Some(payload) = take_frame(&mut buffer, inbound.frame_bytes_max)? {
            let envelopes = decode_envelopes(payload)?;
            if envelopes.is_empty() {
                continue;
            }
            inbound
                .deliver
                .send(InboundBatch { from, envelopes })
                .await
                .map_err(|_| Ended::ReceiverGone)?;
        }
        // `take_frame` reserved room for a partial frame (bounded by the read-ahead); make
        // sure a read has room even between frames.
        if buffer.capacity() - buffer.len() < READ_AHEAD_BYTES / 4 {
            buffer.reserve(READ_AHEAD_BYTES);
        }
        if stream.read_buf(&mut buffer).await? == 0 {
            return if buffer.is_empty() {
                Ok(())
            } else {
                Err(Ended::TruncatedFrame)
            };
        }
    }
}
