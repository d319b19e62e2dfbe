//! A loopback relay to the Docker engine that rewrites the API version in each request's path.
//!
//! testcontainers (0.28) talks to the engine through bollard at bollard's default API version
//! (1.53) without negotiating, and an engine refuses a version newer than its own: Debian 12's
//! `docker.io` (Engine 20.10) speaks 1.41 and answers every such request with "client version
//! 1.53 is too new". When the engine is older than that, the bench starts this relay on
//! `127.0.0.1` and points testcontainers at it (`DOCKER_HOST=tcp://...`); each request line's
//! `/v1.NN/` becomes the engine's own version, and everything else passes through unchanged.
//! The fields testcontainers sends all exist at 1.41 (labels, mounts, port bindings, networks).
//!
//! Requests are framed as HTTP/1.1 says (`Content-Length` or chunked bodies), so a kept-alive
//! connection has every request rewritten; after an `Upgrade` request (attach, exec) the
//! connection is copied as it is. Responses are copied as they come.

use std::io;
use std::path::PathBuf;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// The longest request head (request line and headers) the relay reads.
const HEAD_BYTES_MAX: usize = 64 * 1024;

/// Where the engine listens.
#[derive(Clone, Debug)]
pub enum EngineAddress {
    Unix(PathBuf),
    Tcp(String),
}

impl EngineAddress {
    /// From a `DOCKER_HOST` value (`unix:///path` or `tcp://host:port`).
    pub fn parse(docker_host: &str) -> anyhow::Result<Self> {
        if let Some(path) = docker_host.strip_prefix("unix://") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if let Some(address) = docker_host
            .strip_prefix("tcp://")
            .or_else(|| docker_host.strip_prefix("http://"))
        {
            return Ok(Self::Tcp(address.trim_end_matches('/').to_string()));
        }
        anyhow::bail!(
            "DOCKER_HOST `{docker_host}`: the bench reaches engines on unix:// or tcp:// only"
        )
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn dial(engine: &EngineAddress) -> io::Result<Box<dyn Stream>> {
    Ok(match engine {
        EngineAddress::Unix(path) => Box::new(UnixStream::connect(path).await?),
        EngineAddress::Tcp(address) => Box::new(TcpStream::connect(address).await?),
    })
}

/// Accepts connections on `listener` for as long as the runtime runs; each is relayed to
/// `engine` with API version `version` (`1.41`).
pub async fn serve(listener: TcpListener, engine: EngineAddress, version: String) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let engine = engine.clone();
        let version = version.clone();
        tokio::spawn(async move {
            if let Err(error) = relay(client, &engine, &version).await {
                tracing::debug!(%error, "docker API relay: connection ended");
            }
        });
    }
}

async fn relay(client: TcpStream, engine: &EngineAddress, version: &str) -> io::Result<()> {
    let upstream = dial(engine).await?;
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let (client_read, mut client_write) = client.into_split();
    let responses = tokio::spawn(async move {
        let copied = tokio::io::copy(&mut upstream_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
        copied
    });
    let mut requests = BufReader::new(client_read);
    let forwarded = forward_requests(&mut requests, &mut upstream_write, version).await;
    let _ = upstream_write.shutdown().await;
    let _ = responses.await;
    forwarded
}

/// Copies requests from `client` to `engine`, rewriting each request line, until the client
/// closes (or upgrades the connection, after which bytes are copied as they are).
async fn forward_requests<R, W>(client: &mut R, engine: &mut W, version: &str) -> io::Result<()>
where
    R: AsyncBufReadExt + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let Some(head) = read_head(client).await? else {
            return Ok(());
        };
        let framing = Framing::of(&head);
        let rewritten = rewrite_request_line(&head, version);
        engine.write_all(rewritten.as_bytes()).await?;
        match framing {
            Framing::Upgrade => {
                engine.flush().await?;
                tokio::io::copy(client, engine).await?;
                return Ok(());
            }
            Framing::Length(length) => {
                let copied = tokio::io::copy(&mut (&mut *client).take(length), engine).await?;
                if copied != length {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "request body ended early",
                    ));
                }
            }
            Framing::Chunked => copy_chunked(client, engine).await?,
            Framing::Empty => {}
        }
        engine.flush().await?;
    }
}

/// One request head, up to and including the empty line; `None` at a clean end of stream.
async fn read_head<R: AsyncBufReadExt + Unpin>(client: &mut R) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let read = client.read_until(b'\n', &mut head).await?;
        if read == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request head ended early",
                ))
            };
        }
        if head.len() > HEAD_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            // Blank lines before a request line are allowed and skipped.
            if before == 0 {
                head.clear();
                continue;
            }
            return String::from_utf8(head)
                .map(Some)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request head not UTF-8"));
        }
    }
}

/// How a request's body is delimited.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// The connection becomes a raw stream after this request.
    Upgrade,
}

impl Framing {
    fn of(head: &str) -> Self {
        let mut framing = Self::Empty;
        for line in head.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "upgrade" => return Self::Upgrade,
                "transfer-encoding" if value.to_ascii_lowercase().contains("chunked") => {
                    framing = Self::Chunked;
                }
                "content-length" if framing != Self::Chunked => {
                    if let Ok(length) = value.parse() {
                        framing = Self::Length(length);
                    }
                }
                _ => {}
            }
        }
        framing
    }
}

/// `GET /v1.53/containers/json HTTP/1.1` becomes `GET /v1.41/containers/json HTTP/1.1`; a
/// path without a version is left alone.
fn rewrite_request_line(head: &str, version: &str) -> String {
    let (line, rest) = head.split_once('\n').unwrap_or((head, ""));
    let mut parts = line.splitn(3, ' ');
    let (Some(method), Some(path), Some(protocol)) = (parts.next(), parts.next(), parts.next())
    else {
        return head.to_string();
    };
    let rewritten_path = match versioned_path_rest(path) {
        Some(after) => format!("/v{version}{after}"),
        None => path.to_string(),
    };
    format!("{method} {rewritten_path} {protocol}\n{rest}")
}

/// For `/v1.53/x`, `/x`.
fn versioned_path_rest(path: &str) -> Option<&str> {
    let after_v = path.strip_prefix("/v")?;
    let end = after_v.find('/')?;
    let version = &after_v[..end];
    let (major, minor) = version.split_once('.')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    (digits(major) && digits(minor)).then_some(&after_v[end..])
}

/// Copies one chunked body: chunks, the last (empty) chunk and any trailers.
async fn copy_chunked<R, W>(client: &mut R, engine: &mut W) -> io::Result<()>
where
    R: AsyncBufReadExt + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let mut size_line = String::new();
        if client.read_line(&mut size_line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body ended early",
            ));
        }
        engine.write_all(size_line.as_bytes()).await?;
        let size_text = size_line.trim().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut line = String::new();
                if client.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                engine.write_all(line.as_bytes()).await?;
                if line.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        // The chunk and its CRLF.
        let length = size + 2;
        let copied = tokio::io::copy(&mut (&mut *client).take(length), engine).await?;
        if copied != length {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunk ended early",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_in_the_path_is_replaced_and_nothing_else() {
        let head = "POST /v1.53/containers/create?name=x HTTP/1.1\r\nHost: d\r\n\r\n";
        assert_eq!(
            rewrite_request_line(head, "1.41"),
            "POST /v1.41/containers/create?name=x HTTP/1.1\r\nHost: d\r\n\r\n"
        );
        let unversioned = "GET /_ping HTTP/1.1\r\n\r\n";
        assert_eq!(rewrite_request_line(unversioned, "1.41"), unversioned);
        let odd = "GET /volumes/v1.x/y HTTP/1.1\r\n\r\n";
        assert_eq!(rewrite_request_line(odd, "1.41"), odd);
    }

    #[test]
    fn bodies_are_framed_by_their_headers() {
        let framing = |headers: &str| Framing::of(&format!("POST /x HTTP/1.1\r\n{headers}\r\n"));
        assert_eq!(framing(""), Framing::Empty);
        assert_eq!(framing("Content-Length: 12\r\n"), Framing::Length(12));
        assert_eq!(
            framing("transfer-encoding: chunked\r\nContent-Length: 3\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            framing("Connection: Upgrade\r\nUpgrade: tcp\r\n"),
            Framing::Upgrade
        );
    }

    #[tokio::test]
    async fn kept_alive_requests_are_each_rewritten_with_their_bodies_intact() {
        let input = concat!(
            "POST /v1.53/a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "POST /v1.53/b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "GET /v1.53/c HTTP/1.1\r\n\r\n",
        );
        let mut client = BufReader::new(input.as_bytes());
        let mut engine = Vec::new();
        forward_requests(&mut client, &mut engine, "1.41")
            .await
            .unwrap();
        let expected = concat!(
            "POST /v1.41/a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "POST /v1.41/b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "GET /v1.41/c HTTP/1.1\r\n\r\n",
        );
        assert_eq!(String::from_utf8(engine).unwrap(), expected);
    }

    #[test]
    fn docker_hosts_name_a_socket_or_an_address() {
        assert!(matches!(
            EngineAddress::parse("unix:///var/run/docker.sock").unwrap(),
            EngineAddress::Unix(path) if path == std::path::Path::new("/var/run/docker.sock")
        ));
        assert!(matches!(
            EngineAddress::parse("tcp://127.0.0.1:2375").unwrap(),
            EngineAddress::Tcp(address) if address == "127.0.0.1:2375"
        ));
        let error = EngineAddress::parse("ssh://host").unwrap_err().to_string();
        assert!(error.contains("unix:// or tcp://"), "{error}");
    }
}
