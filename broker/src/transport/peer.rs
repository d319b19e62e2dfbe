//! One destination: its bounded outbound queue and its counters.
//!
//! The queue is a `parking_lot` mutex around a deque plus a tokio `Notify`, so `push` works the
//! same from async code and from a plain thread and never waits for the network: an envelope
//! that does not fit (count or bytes) is dropped and counted on the spot.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use super::frame::envelope_encoded_len;
use super::Envelope;

/// The queue's limits, taken from `TransportLimits`.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueLimits {
    pub messages: usize,
    /// Counted as encoded bytes (envelope header + payload).
    pub bytes: usize,
    pub max_age: Duration,
    /// The largest encoded envelope that can ever be sent (one per frame).
    pub envelope_bytes_max: usize,
}

/// Monotonic totals; the metrics publisher turns them into `metrics` counters.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub sent_messages: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub dropped_messages: AtomicU64,
    pub reconnects: AtomicU64,
    pub connected: AtomicBool,
}

struct Queued {
    envelope: Envelope,
    enqueued: Instant,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Queued>,
    bytes: usize,
    closed: bool,
}

pub(super) struct Peer {
    pub id: u64,
    /// Dialed exactly as given, resolved on every dial.
    pub addr: String,
    pub counters: Counters,
    limits: QueueLimits,
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Peer {
    pub fn new(id: u64, addr: String, limits: QueueLimits) -> Self {
        Peer {
            id,
            addr,
            counters: Counters::default(),
            limits,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        }
    }

    /// Queues what fits and drops (and counts) the rest; returns how many were accepted.
    pub fn push(&self, envelopes: impl IntoIterator<Item = Envelope>) -> usize {
        let now = Instant::now();
        let mut accepted = 0;
        let mut dropped = 0u64;
        {
            let mut queue = self.queue.lock();
            for envelope in envelopes {
                let size = envelope_encoded_len(&envelope);
                let fits = !queue.closed
                    && size <= self.limits.envelope_bytes_max
                    && queue.items.len() < self.limits.messages
                    && queue.bytes + size <= self.limits.bytes;
                if fits {
                    queue.bytes += size;
                    queue.items.push_back(Queued {
                        envelope,
                        enqueued: now,
                    });
                    accepted += 1;
                } else {
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            self.count_dropped(dropped);
        }
        if accepted > 0 {
            self.wake.notify_one();
        }
        accepted
    }

    /// Moves the oldest envelopes into `out`, at most `messages` of them and at most `bytes`
    /// encoded bytes (always at least one if any is queued: each fits a frame on its own).
    pub fn take_batch(&self, messages: usize, bytes: usize, out: &mut Vec<Envelope>) {
        let mut queue = self.queue.lock();
        let mut taken_bytes = 0;
        while out.len() < messages {
            let Some(front) = queue.items.front() else {
                break;
            };
            let size = envelope_encoded_len(&front.envelope);
            if !out.is_empty() && taken_bytes + size > bytes {
                break;
            }
            let item = queue.items.pop_front().expect("front exists");
            queue.bytes -= size;
            taken_bytes += size;
            out.push(item.envelope);
        }
    }

    /// Drops (and counts) envelopes queued for longer than the age limit; run while the peer
    /// is unreachable. Returns how many were shed.
    pub fn shed_expired(&self, now: Instant) -> usize {
        let shed = {
            let mut queue = self.queue.lock();
            let mut shed = 0;
            while let Some(front) = queue.items.front() {
                if now.saturating_duration_since(front.enqueued) < self.limits.max_age {
                    break;
                }
                let item = queue.items.pop_front().expect("front exists");
                queue.bytes -= envelope_encoded_len(&item.envelope);
                shed += 1;
            }
            shed
        };
        if shed > 0 {
            self.count_dropped(shed as u64);
        }
        shed
    }

    /// Refuses further envelopes and drops (and counts) what is queued.
    pub fn close(&self) {
        let dropped = {
            let mut queue = self.queue.lock();
            queue.closed = true;
            queue.bytes = 0;
            std::mem::take(&mut queue.items).len()
        };
        self.count_dropped(dropped as u64);
    }

    /// Queued envelopes and their encoded bytes.
    pub fn queued(&self) -> (usize, usize) {
        let queue = self.queue.lock();
        (queue.items.len(), queue.bytes)
    }

    /// Completes after the next `push` that accepted something (or at once if one happened
    /// since the last wake-up).
    pub fn notified(&self) -> Notified<'_> {
        self.wake.notified()
    }

    pub fn count_dropped(&self, n: u64) {
        self.counters
            .dropped_messages
            .fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn peer(messages: usize, bytes: usize) -> Peer {
        Peer::new(
            2,
            "127.0.0.1:1".into(),
            QueueLimits {
                messages,
                bytes,
                max_age: Duration::from_millis(50),
                envelope_bytes_max: 1000,
            },
        )
    }

    fn envelope(n: usize) -> Envelope {
        Envelope {
            group_id: n as u64,
            payload: Bytes::from(vec![0u8; n]),
        }
    }

    fn dropped(peer: &Peer) -> u64 {
        peer.counters.dropped_messages.load(Ordering::Relaxed)
    }

    #[test]
    fn the_queue_holds_to_both_limits_and_counts_drops() {
        let by_count = peer(3, 1 << 20);
        assert_eq!(by_count.push((0..5).map(|_| envelope(10))), 3);
        assert_eq!(by_count.queued(), (3, 66));
        assert_eq!(dropped(&by_count), 2);

        let by_bytes = peer(100, 100);
        assert_eq!(by_bytes.push([envelope(40), envelope(40)]), 1);
        assert_eq!(by_bytes.push([envelope(30)]), 1); // a smaller one still fits
        assert_eq!(by_bytes.queued(), (2, 94));
        assert_eq!(dropped(&by_bytes), 1);

        let too_big = peer(100, 1 << 20);
        assert_eq!(too_big.push([envelope(989), envelope(988)]), 1);
    }

    #[test]
    fn batches_respect_count_and_bytes_but_always_take_one() {
        let peer = peer(100, 1 << 20);
        peer.push((0..10).map(|_| envelope(88))); // 100 encoded bytes each
        let mut out = Vec::new();
        peer.take_batch(4, 1 << 20, &mut out);
        assert_eq!(out.len(), 4);
        out.clear();
        peer.take_batch(100, 250, &mut out);
        assert_eq!(out.len(), 2);
        out.clear();
        peer.take_batch(100, 10, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(peer.queued(), (3, 300));
    }

    #[test]
    fn old_envelopes_are_shed_and_closing_refuses_more() {
        let peer = peer(100, 1 << 20);
        peer.push((0..5).map(|_| envelope(1)));
        assert_eq!(peer.shed_expired(Instant::now()), 0);
        assert_eq!(
            peer.shed_expired(Instant::now() + Duration::from_millis(60)),
            5
        );
        assert_eq!(peer.queued(), (0, 0));
        peer.push([envelope(1)]);
        peer.close();
        assert_eq!(peer.push([envelope(1)]), 0);
        assert_eq!(dropped(&peer), 7);
        assert_eq!(peer.queued(), (0, 0));
    }
}
