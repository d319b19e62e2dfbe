//! Prometheus metrics and the HTTP listener serving `/metrics` and `/health`.
//!
//! Metrics go through the `metrics` facade; `metrics-exporter-prometheus` renders them. The
//! HTTP side is two fixed GET routes, so it is a few lines on tokio rather than an HTTP
//! framework: one request per connection, `Connection: close`.

use std::net::SocketAddr;
use std::sync::{OnceLock, Weak};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::debug;

use crate::broker::Broker;

/// Bytes of an HTTP request head read before answering.
const MAX_HTTP_REQUEST_BYTES: usize = 8 * 1024;
/// How long a metrics client may take to send its request.
const HTTP_READ_TIMEOUT_MS: u64 = 5_000;

/// The process-wide recorder (one per process, shared by brokers started in one test binary).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(&[
                0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ])
            .expect("static buckets are valid")
            .install_recorder()
            .expect("the metrics recorder is installed once per process")
    })
}

pub fn record_request(api_key: ApiKey, elapsed: Duration) {
    let api = format!("{api_key:?}");
    metrics::counter!("chronik_requests_total", "api" => api.clone()).increment(1);
    metrics::histogram!("chronik_request_duration_seconds", "api" => api)
        .record(elapsed.as_secs_f64());
}

pub fn record_bytes_in(bytes: usize) {
    metrics::counter!("chronik_bytes_in_total").increment(bytes as u64);
}

pub fn record_bytes_out(bytes: usize) {
    metrics::counter!("chronik_bytes_out_total").increment(bytes as u64);
}

pub fn connection_opened() {
    metrics::gauge!("chronik_active_connections").increment(1.0);
}

pub fn connection_closed() {
    metrics::gauge!("chronik_active_connections").decrement(1.0);
}

/// Sets the per-partition gauges from the partitions' current state; run before each render
/// so the numbers are fresh without touching the produce path.
fn update_partition_gauges(broker: &Broker) {
    for partition in broker.all_partitions() {
        let labels = [
            ("topic", partition.topic.clone()),
            ("partition", partition.index.to_string()),
        ];
        metrics::gauge!("chronik_partition_log_end_offset", &labels)
            .set(partition.log_end_offset() as f64);
        metrics::gauge!("chronik_partition_high_watermark", &labels)
            .set(partition.high_watermark() as f64);
        metrics::gauge!("chronik_partition_size_bytes", &labels).set(partition.size_bytes() as f64);
    }
}

/// Serves `/metrics` and `/health` until `shutdown` turns true.
pub async fn serve_http(
    listener: TcpListener,
    broker: Weak<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    debug!(%error, "metrics accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        tokio::spawn(answer(stream, broker.clone()));
    }
}

async fn answer(mut stream: tokio::net::TcpStream, broker: Weak<Broker>) {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(Duration::from_millis(HTTP_READ_TIMEOUT_MS), async {
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|window| window == b"\r\n\r\n")
            && head.len() < MAX_HTTP_REQUEST_BYTES
        {
            let count = stream.read(&mut chunk).await?;
            if count == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..count]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return;
    }
    let request_line = String::from_utf8_lossy(&head);
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = match path {
        "/metrics" => {
            if let Some(broker) = broker.upgrade() {
                update_partition_gauges(&broker);
            }
            ("200 OK", "text/plain; version=0.0.4", handle().render())
        }
        "/health" => match broker.upgrade() {
            Some(broker) if broker.is_ready() => ("200 OK", "text/plain", "ok\n".to_string()),
            _ => (
                "503 Service Unavailable",
                "text/plain",
                "starting\n".to_string(),
            ),
        },
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The address a metrics listener is bound to, for logs.
pub fn describe(address: SocketAddr) -> String {
    format!("http://{address}/metrics")
}
