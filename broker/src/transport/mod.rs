//! Node-to-node transport: carries opaque payloads, tagged with a Raft group id, between the
//! nodes of a cluster. It never looks inside a payload.
//!
//! # Design
//!
//! - **One TCP connection per ordered pair of nodes**, dialed by the sender and used only for
//!   sending: node i's sender task for peer j dials j and writes; j's receiver reads and never
//!   writes application data back (the dialer notices a close as EOF on its read half). So what
//!   travels on link i->j is exactly what i sends to j, and a proxy or firewall rule on one
//!   direction partitions only that direction. Peer addresses are dialed exactly as configured
//!   (`"host:port"`, resolved with tokio's `lookup_host` on every dial, never rewritten).
//! - **Batching**: messages for every group bound for one peer share its connection. The
//!   peer's sender task drains the queue into frames of at most
//!   [`TransportLimits::frame_messages_max`] envelopes and [`TransportLimits::frame_bytes_max`]
//!   bytes, so a busy queue goes out in few large writes (Nagle is off; batching is ours).
//! - **Bounded everything**: each peer's outbound queue is limited in messages and bytes.
//!   [`Transport::send`] never waits for the network (a `parking_lot` mutex and a tokio
//!   `Notify`, so it works from a plain thread as well as from async code): what does not fit
//!   is dropped and counted, which Raft tolerates (it retransmits). While a peer is
//!   unreachable, and once more when a connection comes up, envelopes older than
//!   [`TransportLimits::queue_max_age`] are shed the same way (so a restarted peer gets nothing
//!   that waited longer than that from before it came up). Inbound, each frame becomes one [`InboundBatch`] on a bounded channel; while the
//!   channel is full the connection stops reading, TCP pushes back, and the sender's queue
//!   sheds. A peer has at most one live inbound connection (a newer one supersedes it), and
//!   inbound connections as a whole are capped, so neither side's memory follows a slow or
//!   dead peer.
//! - **Reconnect forever** with exponential backoff (10 ms doubling to 250 ms, equal jitter)
//!   until [`Transport::shutdown`].
//! - **Checked framing** (see [`frame`]): a handshake (`CHRT`, version, node id, cluster id),
//!   then frames with a length and a CRC-32C. The receiver checks the length against its cap
//!   before reserving anything (and then grows with arrived bytes), verifies the CRC, checks
//!   the envelope count against the bytes present, and on any violation logs a warning and
//!   closes that connection; the sender reconnects. A handshake whose node id is not a
//!   configured peer (or whose cluster id differs) is refused the same way.
//!
//! # Deliberately left out
//!
//! - TLS and authentication: the handshake's node id is trusted as stated; run the transport
//!   on a private network.
//! - Delivery guarantees: envelopes may be lost (queue full, aged out, connection dropped
//!   mid-frame); order is kept per sender on one connection. Raft supplies reliability.
//! - Changing the peer set at runtime: peers are fixed at [`Transport::start`].
//! - Fragmentation: an envelope must fit one frame (`frame_bytes_max` - 16 bytes); larger
//!   payloads (snapshots) must be chunked by the caller.
//! - Write timeouts / TCP keepalive tuning: a black-holed peer blocks its sender task in a
//!   write until the kernel gives up, while its queue keeps shedding (memory stays bounded).
//! - Flushing queued envelopes at shutdown: shutdown drops them.
//!
//! # Metrics
//!
//! Per peer (label `peer`, the node id; `peer="unknown"` for sends to unknown ids):
//! `chronik_transport_messages_sent_total`, `chronik_transport_messages_dropped_total`,
//! `chronik_transport_bytes_sent_total` (frame bytes), `chronik_transport_reconnects_total`
//! (dials after the first), `chronik_transport_connected` (gauge, 0/1), and the queue depth
//! gauges `chronik_transport_queue_messages` / `chronik_transport_queue_bytes`. The hot path
//! only bumps atomics; a task publishes them every [`METRICS_INTERVAL`].

pub mod frame;
mod peer;
mod receiver;
mod sender;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_metrics;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use peer::{Peer, QueueLimits};

pub use receiver::{HANDSHAKE_TIMEOUT, INBOUND_CONNECTIONS_MAX};
pub use sender::{BACKOFF_INITIAL, BACKOFF_MAX, CONNECT_TIMEOUT};

pub const METRIC_SENT: &str = "chronik_transport_messages_sent_total";
pub const METRIC_DROPPED: &str = "chronik_transport_messages_dropped_total";
pub const METRIC_BYTES_SENT: &str = "chronik_transport_bytes_sent_total";
pub const METRIC_CONNECTED: &str = "chronik_transport_connected";
pub const METRIC_RECONNECTS: &str = "chronik_transport_reconnects_total";
pub const METRIC_QUEUE_MESSAGES: &str = "chronik_transport_queue_messages";
pub const METRIC_QUEUE_BYTES: &str = "chronik_transport_queue_bytes";
/// How often the per-peer counters are published to the `metrics` recorder.
pub const METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// Default cap on a frame's payload; also bounds one envelope.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// One opaque message for one Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub group_id: u64,
    pub payload: Bytes,
}

/// The envelopes of one received frame, in the order the sender queued them. Payloads share
/// the frame's buffer (zero-copy), so holding one keeps that frame's memory alive.
#[derive(Debug)]
pub struct InboundBatch {
    pub from: u64,
    pub envelopes: Vec<Envelope>,
}

/// Every queue's limit. Sizes count encoded bytes: a 12-byte envelope header plus payload.
#[derive(Debug, Clone)]
pub struct TransportLimits {
    /// Envelopes queued per peer.
    pub queue_messages: usize,
    /// Encoded bytes queued per peer.
    pub queue_bytes: usize,
    /// While a peer is unreachable, and when a connection to it comes up, queued envelopes
    /// older than this are shed.
    pub queue_max_age: Duration,
    /// Envelopes per frame.
    pub frame_messages_max: usize,
    /// Cap on a frame's payload, sent and received: must be the same (or the receivers'
    /// larger) across the cluster.
    pub frame_bytes_max: usize,
    /// Frames (batches) waiting in the inbound channel.
    pub inbound_batches: usize,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            queue_messages: 65_536,
            queue_bytes: 128 << 20,
            queue_max_age: Duration::from_secs(2),
            frame_messages_max: 4_096,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            inbound_batches: 1_024,
        }
    }
}

/// A peer's counters and queue depth, as seen now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub queued_messages: usize,
    pub queued_bytes: usize,
    pub sent_messages: u64,
    pub sent_bytes: u64,
    pub dropped_messages: u64,
    pub reconnects: u64,
    pub connected: bool,
}

pub struct Transport {
    node_id: u64,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What the transport handle and its metrics task share.
struct Shared {
    peers: BTreeMap<u64, Arc<Peer>>,
    dropped_unknown: AtomicU64,
    /// The counter values last handed to the `metrics` recorder.
    published: Mutex<Published>,
}

#[derive(Default)]
struct Published {
    peers: BTreeMap<u64, PeerStats>,
    dropped_unknown: u64,
}

impl Transport {
    /// Binds `listen` and starts a sender task per peer, in a cluster with no id (the
    /// handshake carries an empty cluster id). `peers` excludes this node.
    pub async fn start(
        node_id: u64,
        listen: SocketAddr,
        peers: BTreeMap<u64, String>,
        limits: TransportLimits,
    ) -> anyhow::Result<(Transport, mpsc::Receiver<InboundBatch>)> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the transport listener on {listen}"))?;
        Self::start_on(listener, "", node_id, peers, limits).await
    }

    /// Like [`Transport::start`], on a listener the caller bound (so it can learn the port
    /// before configuring peers), and with a cluster id: connections whose handshake names
    /// another cluster id are refused (a stray node of another cluster that reuses ports and
    /// node ids cannot inject messages).
    pub async fn start_on(
        listener: TcpListener,
        cluster_id: &str,
        node_id: u64,
        peers: BTreeMap<u64, String>,
        limits: TransportLimits,
    ) -> anyhow::Result<(Transport, mpsc::Receiver<InboundBatch>)> {
        check(cluster_id, node_id, &peers, &limits)?;
        let local_addr = listener.local_addr()?;
        let (deliver, inbound_rx) = mpsc::channel(limits.inbound_batches);
        let inbound = receiver::Inbound::new(
            node_id,
            cluster_id.to_string(),
            peers.keys().copied().collect::<BTreeSet<_>>(),
            limits.frame_bytes_max,
            deliver,
        );
        let mut tasks = vec![tokio::spawn(receiver::run_listener(
            listener,
            Arc::new(inbound),
        ))];

        let queue_limits = QueueLimits {
            messages: limits.queue_messages,
            bytes: limits.queue_bytes,
            max_age: limits.queue_max_age,
            envelope_bytes_max: limits.frame_bytes_max - frame::COUNT_BYTES,
        };
        let frame_limits = sender::FrameLimits {
            messages: limits.frame_messages_max,
            bytes: limits.frame_bytes_max,
        };
        let handshake = frame::Handshake {
            node_id,
            cluster_id: cluster_id.to_string(),
        }
        .encode();
        let peers: BTreeMap<u64, Arc<Peer>> = peers
            .into_iter()
            .map(|(id, addr)| (id, Arc::new(Peer::new(id, addr, queue_limits))))
            .collect();
        for peer in peers.values() {
            tasks.push(tokio::spawn(sender::run(
                Arc::clone(peer),
                handshake.clone(),
                frame_limits,
                node_id,
            )));
        }
        let shared = Arc::new(Shared {
            peers,
            dropped_unknown: AtomicU64::new(0),
            published: Mutex::new(Published::default()),
        });
        tasks.push(tokio::spawn(publish_metrics(Arc::clone(&shared))));
        tracing::info!(node_id, %local_addr, peers = shared.peers.len(), "transport: started");
        Ok((
            Transport {
                node_id,
                local_addr,
                shared,
                tasks: Mutex::new(tasks),
            },
            inbound_rx,
        ))
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The address the listener is bound to (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues one envelope for `to` without waiting. False (and counted as dropped) when the
    /// peer is unknown, its queue is full, the envelope can never fit a frame, or the
    /// transport has shut down.
    pub fn send(&self, to: u64, envelope: Envelope) -> bool {
        self.send_many(to, std::iter::once(envelope)) == 1
    }

    /// Queues several envelopes for `to` under one lock and one wake-up; returns how many
    /// were accepted (the rest are dropped and counted, as in [`Transport::send`]).
    pub fn send_many(&self, to: u64, envelopes: impl IntoIterator<Item = Envelope>) -> usize {
        match self.shared.peers.get(&to) {
            Some(peer) => peer.push(envelopes),
            None => {
                let count = envelopes.into_iter().count() as u64;
                self.shared
                    .dropped_unknown
                    .fetch_add(count, Ordering::Relaxed);
                0
            }
        }
    }

    /// Whether the sender task for `to` has a connection up right now.
    pub fn is_connected(&self, to: u64) -> bool {
        self.shared
            .peers
            .get(&to)
            .is_some_and(|peer| peer.counters.connected.load(Ordering::Relaxed))
    }

    /// Whether this node, with the peers it has a connection up to, is a majority of the
    /// cluster (always, for a node without peers).
    pub fn reaches_majority(&self) -> bool {
        let connected = self
            .shared
            .peers
            .values()
            .filter(|peer| peer.counters.connected.load(Ordering::Relaxed))
            .count();
        (connected + 1) * 2 > self.shared.peers.len() + 1
    }

    /// `None` for an unknown peer.
    pub fn peer_stats(&self, to: u64) -> Option<PeerStats> {
        self.shared.peers.get(&to).map(|peer| stats_of(peer))
    }

    /// Envelopes dropped because they were addressed to a node that is not a peer.
    pub fn dropped_unknown(&self) -> u64 {
        self.shared.dropped_unknown.load(Ordering::Relaxed)
    }

    /// Stops every task, closes the listener and all connections, and drops what is queued.
    /// Later sends return false. Takes `&self` so that a transport shared through an `Arc`
    /// (e.g. with a Raft thread) can be shut down by whoever owns the runtime; repeat calls
    /// do nothing.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        for peer in self.shared.peers.values() {
            peer.close();
            peer.counters.connected.store(false, Ordering::Relaxed);
        }
        publish_once(&self.shared);
        tracing::info!(node_id = self.node_id, "transport: shut down");
    }
}

impl Drop for Transport {
    /// A transport dropped without `shutdown` still stops its tasks (without waiting).
    fn drop(&mut self) {
        for task in self.tasks.get_mut().iter() {
            task.abort();
        }
    }
}

fn check(
    cluster_id: &str,
    node_id: u64,
    peers: &BTreeMap<u64, String>,
    limits: &TransportLimits,
) -> anyhow::Result<()> {
    if cluster_id.len() > frame::CLUSTER_ID_BYTES_MAX {
        bail!(
            "cluster id longer than {} bytes",
            frame::CLUSTER_ID_BYTES_MAX
        );
    }
    if peers.contains_key(&node_id) {
        bail!("the peer list contains this node ({node_id})");
    }
    let smallest_frame = frame::COUNT_BYTES + frame::ENVELOPE_HEADER_BYTES;
    if limits.frame_bytes_max < smallest_frame || limits.frame_bytes_max > u32::MAX as usize {
        bail!(
            "frame_bytes_max must be between {smallest_frame} and {}",
            u32::MAX
        );
    }
    if limits.queue_messages == 0
        || limits.queue_bytes == 0
        || limits.frame_messages_max == 0
        || limits.inbound_batches == 0
    {
        bail!("transport limits must be positive: {limits:?}");
    }
    Ok(())
}

fn stats_of(peer: &Peer) -> PeerStats {
    let (queued_messages, queued_bytes) = peer.queued();
    let counters = &peer.counters;
    PeerStats {
        queued_messages,
        queued_bytes,
        sent_messages: counters.sent_messages.load(Ordering::Relaxed),
        sent_bytes: counters.sent_bytes.load(Ordering::Relaxed),
        dropped_messages: counters.dropped_messages.load(Ordering::Relaxed),
        reconnects: counters.reconnects.load(Ordering::Relaxed),
        connected: counters.connected.load(Ordering::Relaxed),
    }
}

async fn publish_metrics(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(METRICS_INTERVAL);
    loop {
        tick.tick().await;
        publish_once(&shared);
    }
}

/// Adds what the counters gained since the last publication to the `metrics` counters and
/// sets the gauges.
fn publish_once(shared: &Shared) {
    let mut published = shared.published.lock();
    for (id, peer) in &shared.peers {
        let now = stats_of(peer);
        let before = published.peers.entry(*id).or_default();
        let label = id.to_string();
        let counters = [
            (METRIC_SENT, now.sent_messages - before.sent_messages),
            (
                METRIC_DROPPED,
                now.dropped_messages - before.dropped_messages,
            ),
            (METRIC_BYTES_SENT, now.sent_bytes - before.sent_bytes),
            (METRIC_RECONNECTS, now.reconnects - before.reconnects),
        ];
        for (name, delta) in counters {
            metrics::counter!(name, "peer" => label.clone()).increment(delta);
        }
        metrics::gauge!(METRIC_CONNECTED, "peer" => label.clone()).set(if now.connected {
            1.0
        } else {
            0.0
        });
        metrics::gauge!(METRIC_QUEUE_MESSAGES, "peer" => label.clone())
            .set(now.queued_messages as f64);
        metrics::gauge!(METRIC_QUEUE_BYTES, "peer" => label).set(now.queued_bytes as f64);
        *before = now;
    }
    let unknown = shared.dropped_unknown.load(Ordering::Relaxed);
    metrics::counter!(METRIC_DROPPED, "peer" => "unknown")
        .increment(unknown - published.dropped_unknown);
    published.dropped_unknown = unknown;
}
