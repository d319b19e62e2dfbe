//! One client connection: read frames, decode, dispatch, and write responses in request order.
//!
//! Requests on one connection are handled concurrently (clients pipeline: librdkafka keeps up
//! to five produce requests in flight per connection, and group commit needs them together),
//! but responses leave in the order the requests arrived, as the protocol requires. At most
//! [`MAX_IN_FLIGHT_REQUESTS`] are outstanding; beyond that the connection stops reading.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::handlers;
use crate::metrics as broker_metrics;
use crate::wire::codec::{self, DecodeError};
use crate::wire::frame;

/// Requests of one connection being handled at once.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 32;

/// What a request's slot resolves to.
enum Answer {
    Response(Bytes),
    /// Produce with acks=0.
    NoResponse,
    /// The response could not be produced: close rather than leave the client waiting.
    Close,
}

type ResponseSlot = oneshot::Receiver<Answer>;

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
    let peer_address = stream.peer_addr().ok();
    let peer = peer_address
        .map(|address| address.to_string())
        .unwrap_or_default();
    // Group descriptions show the client's host the way Kafka does: "/127.0.0.1".
    let peer_host: Arc<str> = peer_address
        .map(|address| format!("/{}", address.ip()))
        .unwrap_or_default()
        .into();
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let (slots, pending) = mpsc::channel::<ResponseSlot>(MAX_IN_FLIGHT_REQUESTS);
    let writer_task = tokio::spawn(write_responses(writer, pending));

    let limit_bytes = broker.config.max_frame_bytes;
    let mut buffer = BytesMut::with_capacity(frame::READ_AHEAD_BYTES);
    'connection: loop {
        loop {
            match frame::take_frame(&mut buffer, limit_bytes) {
                Ok(Some(frame)) => {
                    let Some(slot) = dispatch_frame(&broker, frame, &peer, &peer_host).await else {
                        break 'connection;
                    };
                    if slots.send(slot).await.is_err() {
                        break 'connection;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    warn!(%peer, %error, "closing connection: bad frame");
                    break 'connection;
                }
            }
        }
        if buffer.capacity() == buffer.len() {
            buffer.reserve(frame::READ_AHEAD_BYTES);
        }
        tokio::select! {
            read = reader.read_buf(&mut buffer) => match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    debug!(%peer, %error, "connection read failed");
                    break;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    // Closing the slot channel lets the writer finish every response already owed.
    drop(slots);
    let _ = writer_task.await;
}

/// Decodes a frame and starts handling it; returns the slot its response will arrive in, or
/// `None` when the connection must close. A produce request's proposals are queued before
/// this returns, so pipelined produce requests keep their order.
async fn dispatch_frame(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: &str,
    peer_host: &Arc<str>,
) -> Option<ResponseSlot> {
    broker_metrics::record_bytes_in(frame.len() + 4);
    let (sender, receiver) = oneshot::channel();
    let request = match codec::decode_request(frame) {
        Ok(request) => request,
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            let answer = match codec::unsupported_api_versions_response(correlation_id) {
                Ok(bytes) => Answer::Response(bytes),
                Err(_) => Answer::Close,
            };
            let _ = sender.send(answer);
            return Some(receiver);
        }
        Err(error) => {
            warn!(%peer, %error, "closing connection: undecodable request");
            return None;
        }
    };
    let started = Instant::now();
    let api_key = request.api_key;
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let expects_response =
        !matches!(&request.body, RequestKind::Produce(produce) if produce.acks == 0);
    // Produce proposals are queued here, before the next frame is read.
    let (body, produce) = match request.body {
        RequestKind::Produce(produce) => {
            (None, Some(handlers::produce::submit(broker, produce).await))
        }
        other => (Some(other), None),
    };
    let broker = broker.clone();
    let peer_host = peer_host.clone();
    let header = request.header;
    tokio::spawn(async move {
        let response = match (produce, body) {
            (Some(produce), _) => Some(ResponseKind::Produce(produce.await)),
            (None, Some(body)) => handlers::dispatch(&broker, &header, &peer_host, body).await,
            (None, None) => None,
        };
        broker_metrics::record_request(api_key, started.elapsed());
        debug!(
            ?api_key,
            version,
            correlation_id,
            elapsed_us = started.elapsed().as_micros() as u64,
            "request answered"
        );
        let answer = match response {
            _ if !expects_response => Answer::NoResponse,
            Some(response) => match codec::encode_response(correlation_id, version, &response) {
                Ok(bytes) => Answer::Response(bytes),
                Err(error) => {
                    warn!(?api_key, version, %error, "could not encode response; closing connection");
                    Answer::Close
                }
            },
            None => Answer::Close,
        };
        let _ = sender.send(answer);
    });
    Some(receiver)
}

async fn write_responses(writer: OwnedWriteHalf, mut pending: mpsc::Receiver<ResponseSlot>) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(slot) = pending.recv().await {
        let bytes = match slot.await {
            Ok(Answer::Response(bytes)) => bytes,
            Ok(Answer::NoResponse) => continue,
            // Stop here: the client sees the connection end instead of waiting forever.
            Ok(Answer::Close) | Err(_) => break,
        };
        broker_metrics::record_bytes_out(bytes.len());
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
        // Flush once nothing else is ready, so pipelined responses share a syscall.
        if pending.is_empty() && writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}
