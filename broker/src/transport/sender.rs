//! The outbound side: one task per peer dials it, writes the handshake, then drains the peer's
//! queue into frames on that one connection, reconnecting with jittered exponential backoff
//! until the transport shuts down (the task is aborted then).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use super::frame::{encode_frame, COUNT_BYTES};
use super::peer::Peer;

/// The first reconnect delay; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(10);
/// The longest reconnect delay: a restarted peer is dialed within a quarter second. With 1 s,
/// a wiped node waited half a second or more for its peers to dial it back before it could
/// learn the metadata and start restoring; a refused dial on a dead peer is cheap.
pub const BACKOFF_MAX: Duration = Duration::from_millis(250);
/// A connection that stayed up this long resets the backoff; one refused right after the
/// handshake does not, so a peer that keeps refusing is not dialed in a tight loop.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(1);
/// How long one dial (resolve + TCP connect) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A frame buffer that grew past this is released after use instead of kept.
const FRAME_BUFFER_KEEP_BYTES: usize = 1 << 20;

/// Batching limits for one frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameLimits {
    pub messages: usize,
    /// The cap on a frame's payload (count + envelopes).
    pub bytes: usize,
}

/// Exponential backoff with "equal jitter": each delay is half the current step plus a random
/// part of up to the other half, so peers that lost a node together do not redial in lockstep.
pub(super) struct Backoff {
    step: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Self {
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Backoff {
            step: BACKOFF_INITIAL,
            rng: (seed ^ clock).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: plenty for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = self.step / 2;
        let jitter = half.mul_f64((self.rng >> 11) as f64 / (1u64 << 53) as f64);
        let delay = half + jitter;
        self.step = (self.step * 2).min(BACKOFF_MAX);
        delay
    }

    pub fn reset(&mut self) {
        self.step = BACKOFF_INITIAL;
    }
}

/// Runs until aborted.
pub(super) async fn run(peer: Arc<Peer>, handshake: Bytes, limits: FrameLimits, seed: u64) {
    let mut backoff = Backoff::new(seed ^ peer.id);
    let mut first_dial = true;
    // Whether the current outage has been logged at warn level already.
    let mut outage_logged = false;
    loop {
        if !first_dial {
            peer.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first_dial = false;
        match dial(&peer.addr).await {
            Ok(stream) => {
                let since = Instant::now();
                set_connected(&peer, true);
                info!(peer = peer.id, addr = %peer.addr, "transport: connected to peer");
                let error = serve(&peer, stream, &handshake, limits).await;
                set_connected(&peer, false);
                if since.elapsed() >= BACKOFF_RESET_AFTER {
                    backoff.reset();
                    outage_logged = false;
                }
                if outage_logged {
                    debug!(peer = peer.id, addr = %peer.addr, %error,
                        "transport: connection to peer ended");
                } else {
                    warn!(peer = peer.id, addr = %peer.addr, %error,
                        "transport: connection to peer lost; reconnecting");
                    outage_logged = true;
                }
            }
            Err(error) if !outage_logged => {
                warn!(peer = peer.id, addr = %peer.addr, %error,
                    "transport: cannot reach peer; retrying with backoff");
                outage_logged = true;
            }
            Err(error) => {
                debug!(peer = peer.id, addr = %peer.addr, %error, "transport: dial failed");
            }
        }
        peer.shed_expired(Instant::now());
        tokio::time::sleep(backoff.next_delay()).await;
        peer.shed_expired(Instant::now());
    }
}

fn set_connected(peer: &Peer, connected: bool) {
    peer.counters.connected.store(connected, Ordering::Relaxed);
    let value = if connected { 1.0 } else { 0.0 };
    metrics::gauge!(super::METRIC_CONNECTED, "peer" => peer.id.to_string()).set(value);
}

/// Resolves `addr` exactly as configured (on every dial, so a changed DNS record is picked up)
/// and connects to the first address that answers.
async fn dial(addr: &str) -> io::Result<TcpStream> {
    let attempt = async {
        let mut last_error = None;
        for resolved in tokio::net::lookup_host(addr).await? {
            match TcpStream::connect(resolved).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing")
        }))
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[derive(Debug, thiserror::Error)]
enum ConnectionEnded {
    #[error("peer closed the connection")]
    Closed,
    #[error("peer wrote on a send-only connection")]
    PeerWrote,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Writes the handshake, then frames, until the connection fails. Returns why it ended.
async fn serve(
    peer: &Peer,
    stream: TcpStream,
    handshake: &[u8],
    limits: FrameLimits,
) -> ConnectionEnded {
    let (mut reader, mut writer) = stream.into_split();
    if let Err(error) = writer.write_all(handshake).await {
        return error.into();
    }
    // What waited longer than the age limit for this connection may have been meant for the
    // peer's previous process (a vote request to a node since wiped): it is not delivered, so
    // a restarted peer never sees a message older than the limit from before it came up.
    peer.shed_expired(Instant::now());
    let mut batch = Vec::new();
    let mut frame = BytesMut::new();
    loop {
        peer.take_batch(limits.messages, limits.bytes - COUNT_BYTES, &mut batch);
        if batch.is_empty() {
            // Idle: wait for work, and notice at once if the receiver closes the connection
            // (it never writes, so any read result ends this connection).
            let mut probe = [0u8; 1];
            tokio::select! {
                _ = peer.notified() => continue,
                read = reader.read(&mut probe) => {
                    return match read {
                        Ok(0) => ConnectionEnded::Closed,
                        Ok(_) => ConnectionEnded::PeerWrote,
                        Err(error) => error.into(),
                    };
                }
            }
        }
        frame.clear();
        encode_frame(&mut frame, &batch);
        let count = batch.len() as u64;
        batch.clear();
        if let Err(error) = writer.write_all(&frame).await {
            // Whatever part of the frame got out, the receiver drops an incomplete frame.
            peer.count_dropped(count);
            return error.into();
        }
        let counters = &peer.counters;
        counters.sent_messages.fetch_add(count, Ordering::Relaxed);
        counters
            .sent_bytes
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        if frame.capacity() > FRAME_BUFFER_KEEP_BYTES {
            frame = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::new(7);
        let mut step = BACKOFF_INITIAL;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} for step {step:?}"
            );
            step = (step * 2).min(BACKOFF_MAX);
        }
        assert!(backoff.next_delay() >= BACKOFF_MAX / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= BACKOFF_INITIAL);
        let delays: std::collections::BTreeSet<_> =
            (0..20).map(|_| Backoff::new(1).next_delay()).collect();
        assert!(delays.len() > 1, "jitter varies between tasks");
    }
}
