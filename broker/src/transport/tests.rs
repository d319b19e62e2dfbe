//! End-to-end tests of the transport on loopback: delivery and order, bounded queues towards a
//! dead peer, reconnect, and dialing exactly the configured address.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;

/// A listener on a fresh loopback port, bound before any peer is configured with its
/// address (so no other test can take the port in between).
pub(super) async fn bind_loopback() -> (TcpListener, String) {
    let listener = TcpListener::bind(loopback(0)).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// An address where nothing listens: the port is bound (so neither another test nor a
/// self-connecting dial can take it) but not listening, so dials are refused. Keep the socket
/// alive while the address is in use.
pub(super) fn dead_address() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(loopback(0)).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr.to_string())
}

pub(super) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(super) async fn start_node(
    id: u64,
    listener: TcpListener,
    peers: &[(u64, String)],
    limits: TransportLimits,
) -> (Transport, mpsc::Receiver<InboundBatch>) {
    let peers = peers.iter().cloned().collect();
    Transport::start_on(listener, "", id, peers, limits)
        .await
        .expect("transport starts")
}

/// An envelope whose payload names its sender and sequence number.
pub(super) fn numbered(from: u64, seq: u64, padding: usize) -> Envelope {
    let mut payload = Vec::with_capacity(16 + padding);
    payload.extend_from_slice(&from.to_be_bytes());
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.resize(16 + padding, 0xAB);
    Envelope {
        group_id: seq % 7,
        payload: Bytes::from(payload),
    }
}

pub(super) fn seq_of(envelope: &Envelope) -> (u64, u64) {
    let mut payload = envelope.payload.clone();
    (payload.get_u64(), payload.get_u64())
}

/// Receives until an envelope from `from` with at least sequence `seq` shows up.
pub(super) async fn receive_seq(
    rx: &mut mpsc::Receiver<InboundBatch>,
    from: u64,
    seq: u64,
    within: Duration,
) {
    let found = tokio::time::timeout(within, async {
        while let Some(batch) = rx.recv().await {
            if batch.from == from && batch.envelopes.iter().any(|e| seq_of(e) >= (from, seq)) {
                return;
            }
        }
        panic!("inbound channel closed");
    })
    .await;
    assert!(found.is_ok(), "no envelope {from}/{seq} within {within:?}");
}

async fn eventually(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_every_envelope_in_order_per_sender() {
    const PER_PAIR: u64 = 10_000;
    let mut listeners = Vec::new();
    for _ in 1..=3 {
        listeners.push(bind_loopback().await);
    }
    let addrs: Vec<String> = listeners.iter().map(|(_, addr)| addr.clone()).collect();
    let mut nodes = Vec::new();
    for (id, (listener, _)) in (1..=3u64).zip(listeners) {
        let peers: Vec<_> = (1..=3u64)
            .filter(|&p| p != id)
            .map(|p| (p, addrs[p as usize - 1].clone()))
            .collect();
        nodes.push(start_node(id, listener, &peers, TransportLimits::default()).await);
    }
    let mut collectors = Vec::new();
    for (index, (_, rx)) in nodes.iter_mut().enumerate() {
        let mut rx = std::mem::replace(rx, mpsc::channel(1).1);
        let me = index as u64 + 1;
        collectors.push(tokio::spawn(async move {
            let mut next: BTreeMap<u64, u64> = BTreeMap::new();
            let mut total = 0;
            while total < 2 * PER_PAIR {
                let batch = rx.recv().await.expect("channel open");
                assert_ne!(batch.from, me);
                for envelope in batch.envelopes {
                    let (from, seq) = seq_of(&envelope);
                    assert_eq!(from, batch.from, "sender id comes from the handshake");
                    assert_eq!(envelope.group_id, seq % 7);
                    let expected = next.entry(from).or_insert(0);
                    assert_eq!(seq, *expected, "in order from {from}");
                    *expected += 1;
                    total += 1;
                }
            }
            next
        }));
    }
    for (index, (transport, _)) in nodes.iter().enumerate() {
        let me = index as u64 + 1;
        for to in (1..=3u64).filter(|&p| p != me) {
            // Half one by one, half in groups, to cover both entry points.
            for seq in 0..PER_PAIR / 2 {
                assert!(transport.send(to, numbered(me, seq, 32)));
            }
            for chunk in (PER_PAIR / 2..PER_PAIR).collect::<Vec<_>>().chunks(100) {
                let batch = chunk.iter().map(|&seq| numbered(me, seq, 32));
                assert_eq!(transport.send_many(to, batch), chunk.len());
            }
        }
    }
    for (index, collector) in collectors.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(30), collector)
            .await
            .expect("all envelopes arrive in time")
            .expect("collector ok");
        assert_eq!(next.len(), 2, "node {} heard from both others", index + 1);
        assert!(next.values().all(|&n| n == PER_PAIR));
    }
    for (transport, _) in &nodes {
        let me = transport.node_id();
        for to in (1..=3u64).filter(|&p| p != me) {
            // A frame can arrive before its writer counts it as sent.
            eventually(Duration::from_secs(5), "the sender's count", || {
                transport.peer_stats(to).unwrap().sent_messages == PER_PAIR
            })
            .await;
            let stats = transport.peer_stats(to).unwrap();
            assert_eq!(stats.dropped_messages, 0);
            assert!(stats.connected);
        }
    }
    for (transport, _) in nodes {
        transport.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_never_grows_the_queue_or_blocks_the_caller() {
    const SENDS: u64 = 1_000_000;
    let limits = TransportLimits {
        queue_messages: 10_000,
        queue_bytes: 512 * 1024,
        queue_max_age: Duration::from_millis(300),
        ..TransportLimits::default()
    };
    // Nothing listens on the peer's port.
    let (_reserved, dead) = dead_address();
    let (listener, _) = bind_loopback().await;
    let (transport, _rx) = start_node(1, listener, &[(2, dead)], limits.clone()).await;
    let transport = Arc::new(transport);

    // The Raft loop may be a plain thread: send from one.
    let sender = Arc::clone(&transport);
    let started = Instant::now();
    let (accepted, max_seen) = std::thread::spawn(move || {
        let payload = Bytes::from_static(&[7u8; 100]);
        let (mut accepted, mut max_seen) = (0u64, (0usize, 0usize));
        for seq in 0..SENDS {
            let envelope = Envelope {
                group_id: seq % 16,
                payload: payload.clone(),
            };
            accepted += sender.send(2, envelope) as u64;
            if seq % 1_000 == 0 {
                let stats = sender.peer_stats(2).unwrap();
                max_seen.0 = max_seen.0.max(stats.queued_messages);
                max_seen.1 = max_seen.1.max(stats.queued_bytes);
            }
        }
        (accepted, max_seen)
    })
    .join()
    .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "the send loop took {elapsed:?}"
    );

    let stats = transport.peer_stats(2).unwrap();
    assert!(max_seen.0 <= limits.queue_messages && max_seen.1 <= limits.queue_bytes);
    assert!(stats.queued_messages <= limits.queue_messages);
    assert!(stats.queued_bytes <= limits.queue_bytes);
    // 112 encoded bytes each, so the byte limit binds (~4,700); aging frees a little room.
    assert!(accepted < SENDS / 20, "accepted {accepted}");
    assert_eq!(stats.sent_messages, 0);
    assert!(!transport.is_connected(2));
    assert!(stats.dropped_messages >= SENDS - accepted);

    // While the peer stays unreachable, what is queued ages out and is shed.
    eventually(Duration::from_secs(5), "the queue to age out", || {
        transport.peer_stats(2).unwrap().queued_messages == 0
    })
    .await;
    let stats = transport.peer_stats(2).unwrap();
    assert_eq!(stats.dropped_messages, SENDS);
    assert!(stats.reconnects >= 1, "kept redialing: {stats:?}");
    transport.shutdown().await;
    eprintln!("{SENDS} sends to a dead peer took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_on_the_same_port_gets_later_envelopes() {
    let ((listener1, addr1), (listener2, addr2)) = (bind_loopback().await, bind_loopback().await);
    let port2 = listener2.local_addr().unwrap().port();
    let limits = TransportLimits::default();
    let (node1, mut rx1) = start_node(1, listener1, &[(2, addr2)], limits.clone()).await;
    let (node2, mut rx2) = start_node(2, listener2, &[(1, addr1.clone())], limits.clone()).await;

    assert!(node1.send(2, numbered(1, 0, 0)));
    receive_seq(&mut rx2, 1, 0, Duration::from_secs(5)).await;
    node2.shutdown().await;
    drop((node2, rx2));
    eventually(Duration::from_secs(5), "node 1 to notice", || {
        !node1.is_connected(2)
    })
    .await;
    for seq in 1..100 {
        node1.send(2, numbered(1, seq, 0)); // may be lost
    }

    // Rebinding the port is retried briefly, in case anything holds it for a moment.
    let mut attempts = 0;
    let (node2, mut rx2) = loop {
        let peers = [(1, addr1.clone())].into();
        match Transport::start(2, loopback(port2), peers, limits.clone()).await {
            Ok(started) => break started,
            Err(error) if attempts < 50 => {
                attempts += 1;
                eprintln!("rebinding port {port2}: {error:#}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("cannot restart node 2: {error:#}"),
        }
    };
    let mut seq = 1_000;
    let arrived = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            node1.send(2, numbered(1, seq, 0));
            seq += 1;
            if let Ok(Some(batch)) =
                tokio::time::timeout(Duration::from_millis(20), rx2.recv()).await
            {
                if batch.envelopes.iter().any(|e| seq_of(e) >= (1, 1_000)) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(arrived.is_ok(), "no envelope reached the restarted node");
    assert!(node1.is_connected(2));
    assert!(node1.peer_stats(2).unwrap().reconnects >= 1);

    // And the restarted node reaches node 1 (whose old inbound connection died with it).
    assert!(node2.send(1, numbered(2, 5, 0)));
    receive_seq(&mut rx1, 2, 5, Duration::from_secs(5)).await;
    node1.shutdown().await;
    node2.shutdown().await;
}

/// Forwards every connection it accepts to `target`, counting bytes in each direction.
struct Forwarder {
    addr: SocketAddr,
    forward_bytes: Arc<AtomicU64>,
    backward_bytes: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    counter: Arc<AtomicU64>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 || to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        counter.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = to.shutdown().await;
}

async fn start_forwarder(target: SocketAddr) -> Forwarder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let forwarder = Forwarder {
        addr: listener.local_addr().unwrap(),
        forward_bytes: Arc::default(),
        backward_bytes: Arc::default(),
        connections: Arc::default(),
    };
    let (forward, backward) = (
        Arc::clone(&forwarder.forward_bytes),
        Arc::clone(&forwarder.backward_bytes),
    );
    let connections = Arc::clone(&forwarder.connections);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            tokio::spawn(pump(in_read, out_write, Arc::clone(&forward)));
            tokio::spawn(pump(out_read, in_write, Arc::clone(&backward)));
        }
    });
    forwarder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_dialed_exactly_as_configured_and_links_are_one_way() {
    const COUNT: u64 = 1_000;
    let ((listener1, addr1), (listener2, _)) = (bind_loopback().await, bind_loopback().await);
    let forwarder = start_forwarder(listener2.local_addr().unwrap()).await;
    let limits = TransportLimits::default();
    // Node 1 reaches node 2 only through the forwarder, by host name; node 2 dials node 1
    // directly.
    let (node2, mut rx2) = start_node(2, listener2, &[(1, addr1)], limits.clone()).await;
    let via_forwarder = format!("localhost:{}", forwarder.addr.port());
    let (node1, mut rx1) = start_node(1, listener1, &[(2, via_forwarder)], limits).await;

    for seq in 0..COUNT {
        assert!(node1.send(2, numbered(1, seq, 100)));
        assert!(node2.send(1, numbered(2, seq, 100)));
    }
    receive_seq(&mut rx2, 1, COUNT - 1, Duration::from_secs(10)).await;
    receive_seq(&mut rx1, 2, COUNT - 1, Duration::from_secs(10)).await;

    // Everything node 1 wrote to node 2 (handshake + frames) crossed the forwarder. (Read
    // the counters until they settle: a frame can arrive before its writer counts it.)
    let handshake_len = frame::Handshake {
        node_id: 1,
        cluster_id: String::new(),
    }
    .encode()
    .len() as u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = node1.peer_stats(2).unwrap();
        let forwarded = forwarder.forward_bytes.load(Ordering::SeqCst);
        if stats.sent_messages == COUNT && forwarded == stats.sent_bytes + handshake_len {
            assert!(forwarded > COUNT * 128);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "forwarded {forwarded} bytes; node 1 sent the handshake ({handshake_len}) and {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...on one connection, with nothing written back, and none of 2 -> 1.
    assert_eq!(forwarder.connections.load(Ordering::SeqCst), 1);
    assert_eq!(forwarder.backward_bytes.load(Ordering::SeqCst), 0);
    eventually(Duration::from_secs(5), "node 2 to count its sends", || {
        node2.peer_stats(1).unwrap().sent_messages == COUNT
    })
    .await;
    assert!(node2.peer_stats(1).unwrap().sent_bytes > COUNT * 128);
    assert_eq!(forwarder.backward_bytes.load(Ordering::SeqCst), 0);
    node1.shutdown().await;
    node2.shutdown().await;
}

#[tokio::test]
async fn unknown_peers_and_a_shut_down_transport_refuse_sends() {
    let (_reserved, dead) = dead_address();
    let (listener, _) = bind_loopback().await;
    let (transport, _rx) = start_node(1, listener, &[(2, dead)], TransportLimits::default()).await;
    assert!(!transport.send(9, numbered(1, 0, 0)));
    assert_eq!(transport.send_many(9, (0..3).map(|s| numbered(1, s, 0))), 0);
    assert_eq!(transport.dropped_unknown(), 4);
    assert!(transport.peer_stats(9).is_none());
    assert!(transport.send(2, numbered(1, 0, 0)));
    transport.shutdown().await;
    assert!(!transport.send(2, numbered(1, 1, 0)));
    assert_eq!(transport.peer_stats(2).unwrap().dropped_messages, 2);
    transport.shutdown().await; // idempotent

    let own_id = Transport::start(
        1,
        loopback(0),
        [(1, "127.0.0.1:1".to_string())].into(),
        TransportLimits::default(),
    )
    .await;
    assert!(own_id.is_err(), "a node cannot be its own peer");
}
