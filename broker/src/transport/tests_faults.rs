//! Faults on the inbound side: corrupt and oversized frames and bad handshakes close only their
//! own connection; a full inbound channel pushes back on the sender, whose queue sheds.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::frame::{encode_frame, Handshake, FORMAT_VERSION, MAGIC};
use super::tests::{bind_loopback, dead_address, numbered, receive_seq, seq_of, start_node};
use super::*;

fn handshake(node_id: u64, cluster_id: &str) -> Vec<u8> {
    Handshake {
        node_id,
        cluster_id: cluster_id.into(),
    }
    .encode()
    .to_vec()
}

fn frame(envelopes: &[Envelope]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(&mut out, envelopes);
    out.to_vec()
}

async fn connect_and_write(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// The receiver closed the connection (EOF or reset) without writing anything.
async fn assert_closed(mut stream: TcpStream, what: &str) {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(_)) => panic!("{what}: the receiver wrote on the connection"),
        Err(_) => panic!("{what}: the receiver did not close the connection"),
    }
}

async fn assert_open(stream: &mut TcpStream, what: &str) {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut byte)).await;
    assert!(
        read.is_err(),
        "{what}: connection ended or was written to: {read:?}"
    );
}

/// Receives until `from`/`seq` arrives; fails if any envelope in `forbidden` shows up first.
async fn receive_without(
    rx: &mut mpsc::Receiver<InboundBatch>,
    (from, seq): (u64, u64),
    forbidden: &[(u64, u64)],
) {
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let batch = rx.recv().await.expect("channel open");
            for envelope in &batch.envelopes {
                let id = seq_of(envelope);
                assert!(!forbidden.contains(&id), "{id:?} was delivered");
                if id == (from, seq) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(found.is_ok(), "{from}/{seq} did not arrive");
}

/// Node 1's connection to node 2 still delivers.
async fn ping(node1: &Transport, rx: &mut mpsc::Receiver<InboundBatch>, marker: &mut u64) {
    *marker += 1;
    assert!(node1.send(2, numbered(1, *marker, 0)));
    receive_seq(rx, 1, *marker, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_handshakes_close_only_their_connection() {
    let ((listener1, addr1), (listener2, addr2)) = (bind_loopback().await, bind_loopback().await);
    let limits = TransportLimits {
        frame_bytes_max: 1 << 20,
        ..TransportLimits::default()
    };
    let (_reserved, nowhere) = dead_address();
    // Node 2 accepts nodes 1 (a real transport), 3 and 4 (raw test connections).
    let peers2 = [(1, addr1), (3, nowhere.clone()), (4, nowhere)];
    let (node2, mut rx) = start_node(2, listener2, &peers2, limits.clone()).await;
    let (node1, _rx1) = start_node(1, listener1, &[(2, addr2)], limits).await;
    let addr2 = node2.local_addr();
    let mut marker = 0;
    ping(&node1, &mut rx, &mut marker).await;

    // A well-behaved raw connection (node 4) stays open throughout.
    let mut bytes = handshake(4, "");
    bytes.extend(frame(&[numbered(4, 0, 0)]));
    let mut good = connect_and_write(addr2, &bytes).await;
    receive_seq(&mut rx, 4, 0, Duration::from_secs(5)).await;
    assert_open(&mut good, "a valid connection").await;

    // Bad CRC: the frame before it is delivered, nothing from it or after it.
    let mut corrupt = frame(&[numbered(3, 1, 10)]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    let mut bytes = handshake(3, "");
    bytes.extend(frame(&[numbered(3, 0, 0)]));
    bytes.extend(corrupt);
    bytes.extend(frame(&[numbered(3, 2, 0)]));
    let stream = connect_and_write(addr2, &bytes).await;
    assert_closed(stream, "bad CRC").await;
    marker += 1;
    assert!(node1.send(2, numbered(1, marker, 0)));
    receive_without(&mut rx, (1, marker), &[(3, 1), (3, 2)]).await;

    // A length over the cap closes at once, without waiting for (or reserving) the payload.
    let mut bytes = handshake(3, "");
    bytes.put_u32((1 << 20) + 1);
    bytes.put_u32(0);
    let stream = connect_and_write(addr2, &bytes).await;
    assert_closed(stream, "oversized frame").await;
    let mut bytes = handshake(3, "");
    bytes.put_u32(u32::MAX);
    bytes.put_u32(0);
    assert_closed(connect_and_write(addr2, &bytes).await, "u32::MAX frame").await;
    ping(&node1, &mut rx, &mut marker).await;

    // Handshakes: not ours at all, another version, unknown node, itself, another cluster.
    let mut wrong_version = MAGIC.to_vec();
    wrong_version.put_u16(FORMAT_VERSION + 1);
    wrong_version.put_u64(3);
    wrong_version.put_u16(0);
    let bad_handshakes: [(&str, Vec<u8>); 5] = [
        ("bad magic", b"GET /metrics HTTP/1.1\r\n\r\n".to_vec()),
        ("wrong version", wrong_version),
        ("unknown node", handshake(9, "")),
        ("own node id", handshake(2, "")),
        ("other cluster", handshake(3, "another-cluster")),
    ];
    for (what, mut bytes) in bad_handshakes {
        bytes.extend(frame(&[numbered(3, 99, 0)]));
        assert_closed(connect_and_write(addr2, &bytes).await, what).await;
    }
    ping(&node1, &mut rx, &mut marker).await;

    // The good connection and node 1's still work, and nothing from the refused ones arrived.
    good.write_all(&frame(&[numbered(4, 1, 0)])).await.unwrap();
    receive_without(&mut rx, (4, 1), &[(3, 99)]).await;
    assert_open(&mut good, "a valid connection").await;
    ping(&node1, &mut rx, &mut marker).await;
    assert!(node1.is_connected(2));
    assert_eq!(node1.peer_stats(2).unwrap().reconnects, 0);
    node1.shutdown().await;
    node2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbound_channel_pushes_back_and_the_sender_sheds() {
    const CHUNKS: u64 = 400;
    const CHUNK: u64 = 500;
    const TOTAL: u64 = CHUNKS * CHUNK;
    let ((listener1, addr1), (listener2, addr2)) = (bind_loopback().await, bind_loopback().await);
    let receiver_limits = TransportLimits {
        inbound_batches: 2,
        ..TransportLimits::default()
    };
    let sender_limits = TransportLimits {
        queue_messages: 2_000,
        queue_bytes: 4 << 20,
        queue_max_age: Duration::from_secs(60), // only the size limits shed here
        frame_messages_max: 64,
        ..TransportLimits::default()
    };
    let (node2, mut rx) = start_node(2, listener2, &[(1, addr1)], receiver_limits).await;
    let (node1, _rx1) = start_node(1, listener1, &[(2, addr2)], sender_limits.clone()).await;
    assert!(node1.send(2, numbered(1, 0, 0)));
    receive_seq(&mut rx, 1, 0, Duration::from_secs(5)).await;

    // ~200 MiB offered at a pace a reading receiver keeps up with, while nobody drains node 2.
    let mut accepted = 0;
    for chunk in 0..CHUNKS {
        let seqs = chunk * CHUNK + 1..(chunk + 1) * CHUNK + 1;
        accepted += node1.send_many(2, seqs.map(|seq| numbered(1, seq, 1_008)));
        let stats = node1.peer_stats(2).unwrap();
        assert!(stats.queued_messages <= sender_limits.queue_messages);
        assert!(stats.queued_bytes <= sender_limits.queue_bytes);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stats = node1.peer_stats(2).unwrap();
    eprintln!("back-pressure: accepted {accepted} of {TOTAL}, {stats:?}");
    assert!(rx.len() <= 2);
    // What left node 1 is bounded by the socket buffers plus a few frames, not by the offer.
    assert!(
        stats.sent_messages < TOTAL / 4,
        "sent {}",
        stats.sent_messages
    );
    assert!(
        stats.dropped_messages > TOTAL / 2,
        "dropped {}",
        stats.dropped_messages
    );
    assert_eq!(stats.dropped_messages, TOTAL - accepted as u64);
    assert!(node1.is_connected(2), "back-pressure is not a disconnect");

    // Once node 2 drains again, the same connection carries new envelopes.
    let marker = TOTAL + 1;
    while !node1.send(2, numbered(1, marker, 0)) {
        while rx.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    receive_seq(&mut rx, 1, marker, Duration::from_secs(15)).await;
    assert_eq!(node1.peer_stats(2).unwrap().reconnects, 0);
    node1.shutdown().await;
    node2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_connection_from_a_peer_supersedes_the_older_one() {
    let (_reserved, nowhere) = dead_address();
    let (listener, _) = bind_loopback().await;
    let (node2, mut rx) =
        start_node(2, listener, &[(4, nowhere)], TransportLimits::default()).await;
    let addr2 = node2.local_addr();
    let mut bytes = handshake(4, "");
    bytes.extend(frame(&[numbered(4, 0, 0)]));
    let mut older = connect_and_write(addr2, &bytes).await;
    receive_seq(&mut rx, 4, 0, Duration::from_secs(5)).await;
    assert_open(&mut older, "the only connection from node 4").await;

    let mut bytes = handshake(4, "");
    bytes.extend(frame(&[numbered(4, 1, 0)]));
    let mut newer = connect_and_write(addr2, &bytes).await;
    receive_seq(&mut rx, 4, 1, Duration::from_secs(5)).await;
    assert_closed(older, "the superseded connection").await;
    assert_open(&mut newer, "the newer connection").await;
    node2.shutdown().await;
}
