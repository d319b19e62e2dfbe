//! The metrics publisher: names, labels, and counters that grow by deltas (never re-added).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use parking_lot::Mutex;

use super::peer::{Peer, QueueLimits};
use super::*;

/// Records every counter and gauge as `name{label=value,..}` -> value.
#[derive(Default)]
struct Capture {
    values: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl Capture {
    fn cell(&self, key: &Key) -> Arc<AtomicU64> {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.values.lock().entry(name).or_default())
    }

    fn counter(&self, name: &str, peer: &str) -> u64 {
        let values = self.values.lock();
        let cell = values.get(&format!("{name}{{peer={peer}}}"));
        cell.unwrap_or_else(|| panic!("{name} for {peer} was never published"))
            .load(Ordering::SeqCst)
    }

    fn gauge(&self, name: &str, peer: &str) -> f64 {
        f64::from_bits(self.counter(name, peer))
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn published_counters_follow_the_peer_counters_by_delta() {
    let limits = QueueLimits {
        messages: 10,
        bytes: 1 << 20,
        max_age: Duration::from_secs(1),
        envelope_bytes_max: 1 << 10,
    };
    let peer = Arc::new(Peer::new(2, "127.0.0.1:1".into(), limits));
    let shared = Shared {
        peers: [(2, Arc::clone(&peer))].into(),
        dropped_unknown: AtomicU64::new(3),
        published: Mutex::new(Published::default()),
    };
    let envelope = || Envelope {
        group_id: 1,
        payload: bytes::Bytes::from_static(b"abcd"),
    };
    peer.push((0..12).map(|_| envelope())); // 10 queued, 2 dropped
    peer.counters.sent_messages.store(5, Ordering::SeqCst);
    peer.counters.sent_bytes.store(80, Ordering::SeqCst);
    peer.counters.reconnects.store(1, Ordering::SeqCst);
    peer.counters.connected.store(true, Ordering::SeqCst);

    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || publish_once(&shared));
    assert_eq!(capture.counter(METRIC_SENT, "2"), 5);
    assert_eq!(capture.counter(METRIC_DROPPED, "2"), 2);
    assert_eq!(capture.counter(METRIC_BYTES_SENT, "2"), 80);
    assert_eq!(capture.counter(METRIC_RECONNECTS, "2"), 1);
    assert_eq!(capture.counter(METRIC_DROPPED, "unknown"), 3);
    assert_eq!(capture.gauge(METRIC_CONNECTED, "2"), 1.0);
    assert_eq!(capture.gauge(METRIC_QUEUE_MESSAGES, "2"), 10.0);
    assert_eq!(capture.gauge(METRIC_QUEUE_BYTES, "2"), 160.0);

    peer.counters.sent_messages.store(7, Ordering::SeqCst);
    peer.counters.connected.store(false, Ordering::SeqCst);
    peer.push([envelope()]);
    metrics::with_local_recorder(&capture, || publish_once(&shared));
    assert_eq!(capture.counter(METRIC_SENT, "2"), 7);
    assert_eq!(capture.counter(METRIC_DROPPED, "2"), 3);
    assert_eq!(capture.counter(METRIC_DROPPED, "unknown"), 3);
    assert_eq!(capture.gauge(METRIC_CONNECTED, "2"), 0.0);
}
