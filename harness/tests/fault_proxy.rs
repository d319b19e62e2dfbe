//! The built-in Toxiproxy server, driven through `FaultProxy` as the runner drives it, with real
//! traffic over loopback TCP: every toxic on each stream, disabling and enabling, toxics changed
//! on open connections, reset and teardown. Timing checks assert lower bounds that prove the
//! effect and generous upper bounds, so a loaded machine does not fail them.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chronik_bench::network::FaultProxy;
use chronik_bench::scenario::{Stream, Toxic};
use chronik_bench::toxiproxy::BuiltinToxiproxy;

const STREAMS: [Stream; 2] = [Stream::Upstream, Stream::Downstream];
/// What no effect in these tests needs, even on a loaded machine.
const GENEROUS: Duration = Duration::from_secs(5);

fn ms(milliseconds: u64) -> Duration {
    Duration::from_millis(milliseconds)
}

/// Runs `serve` on each connection of a new loopback listener, on its own thread.
fn server(serve: impl Fn(TcpStream) + Send + Sync + Copy + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    address
}

/// Sends back what it reads.
fn echo_server() -> SocketAddr {
    server(|mut stream| {
        let mut buffer = [0; 64 * 1024];
        while let Ok(read @ 1..) = stream.read(&mut buffer) {
            if stream.write_all(&buffer[..read]).is_err() {
                return;
            }
        }
    })
}

/// Sends `bytes` bytes in one write, then reads until the peer closes.
fn talker_server<const BYTES: usize>() -> SocketAddr {
    server(|mut stream| {
        let _ = stream.write_all(&[7; BYTES]);
        let _ = stream.read_to_end(&mut Vec::new());
    })
}

/// Closes each connection at once.
fn closing_server() -> SocketAddr {
    server(drop)
}

/// Reports the size of every read of each connection, once the peer closes.
fn recording_server() -> (SocketAddr, mpsc::Receiver<Vec<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let sender = sender.clone();
            thread::spawn(move || {
                let mut sizes = Vec::new();
                let mut buffer = [0; 64 * 1024];
                while let Ok(read @ 1..) = stream.read(&mut buffer) {
                    sizes.push(read);
                }
                let _ = sender.send(sizes);
            });
        }
    });
    (address, receiver)
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(GENEROUS)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Writes `bytes` and reads them back; how long that took.
fn round_trip(stream: &mut TcpStream, bytes: usize) -> Duration {
    let sent: Vec<u8> = (0..bytes).map(|index| index as u8).collect();
    let started = Instant::now();
    stream.write_all(&sent).unwrap();
    let mut received = vec![0; bytes];
    stream.read_exact(&mut received).unwrap();
    assert_eq!(received, sent);
    started.elapsed()
}

/// Reads until the peer closes; the bytes read and whether it ended in a reset.
fn read_until_closed(stream: &mut TcpStream) -> (usize, Option<ErrorKind>) {
    let mut total = 0;
    let mut buffer = [0; 64 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (total, None),
            Ok(read) => total += read,
            Err(error) => return (total, Some(error.kind())),
        }
    }
}

fn proxy_to(fault_proxy: &FaultProxy, name: &str, upstream: SocketAddr) -> SocketAddr {
    fault_proxy
        .create_proxy(name, "127.0.0.1:0", &upstream.to_string())
        .unwrap()
}

/// A proxy named after the stream with one toxic on that stream.
fn proxy_with_toxic(
    fault_proxy: &FaultProxy,
    upstream: SocketAddr,
    toxic: &Toxic,
    stream: Stream,
) -> SocketAddr {
    let name = format!("{stream:?}").to_lowercase();
    let address = proxy_to(fault_proxy, &name, upstream);
    fault_proxy
        .add_toxic(&name, "toxic", toxic, stream, 1.0)
        .unwrap();
    address
}

fn median(mut values: Vec<usize>) -> usize {
    values.sort_unstable();
    values[values.len() / 2]
}

#[test]
fn traffic_passes_through_a_proxy_on_the_port_it_bound() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    assert_eq!(fault_proxy.description(), "built-in");
    let address = proxy_to(&fault_proxy, "plain", echo_server());
    assert_ne!(address.port(), 0);
    let mut stream = connect(address);
    assert!(round_trip(&mut stream, 100_000) < GENEROUS);
}

#[test]
fn latency_delays_each_stream() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let upstream = echo_server();
    for stream in STREAMS {
        let latency = Toxic::Latency {
            latency: ms(200),
            jitter: ms(20),
        };
        let mut connection = connect(proxy_with_toxic(&fault_proxy, upstream, &latency, stream));
        let elapsed = round_trip(&mut connection, 10);
        assert!(
            elapsed >= ms(180) && elapsed < ms(180) + GENEROUS,
            "{stream:?}: {elapsed:?}"
        );
    }
}

#[test]
fn bandwidth_limits_each_stream() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let upstream = echo_server();
    for stream in STREAMS {
        // 16,000 bytes at 40 KB/s: 400 ms.
        let bandwidth = Toxic::Bandwidth { rate: 40 };
        let mut connection = connect(proxy_with_toxic(&fault_proxy, upstream, &bandwidth, stream));
        let elapsed = round_trip(&mut connection, 16_000);
        assert!(
            elapsed >= ms(350) && elapsed < ms(400) + GENEROUS,
            "{stream:?}: {elapsed:?}"
        );
    }
}

#[test]
fn timeout_drops_data_until_removed_and_closes_after_its_timeout() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let upstream = echo_server();

    // timeout 0 on an open connection: data stops, the connection stays, removal restores.
    let address = proxy_to(&fault_proxy, "hold", upstream);
    let mut connection = connect(address);
    round_trip(&mut connection, 10);
    let forever = Toxic::Timeout { timeout: ms(0) };
    fault_proxy
        .add_toxic("hold", "stop", &forever, Stream::Upstream, 1.0)
        .unwrap();
    connection.write_all(b"dropped").unwrap();
    connection.set_read_timeout(Some(ms(300))).unwrap();
    let error = connection.read(&mut [0; 16]).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error}"
    );
    fault_proxy.remove_toxic("hold", "stop").unwrap();
    connection.set_read_timeout(Some(GENEROUS)).unwrap();
    round_trip(&mut connection, 10);

    // timeout 200 ms on each stream: no data, then the connection closes.
    for stream in STREAMS {
        let timeout = Toxic::Timeout { timeout: ms(200) };
        let mut connection = connect(proxy_with_toxic(&fault_proxy, upstream, &timeout, stream));
        let started = Instant::now();
        connection.write_all(b"lost").unwrap();
        let (read, reset) = read_until_closed(&mut connection);
        let elapsed = started.elapsed();
        assert_eq!((read, reset), (0, None), "{stream:?}");
        assert!(
            elapsed >= ms(190) && elapsed < GENEROUS,
            "{stream:?}: {elapsed:?}"
        );
    }
}

#[test]
fn reset_peer_resets_the_connection() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let upstream = echo_server();
    for (stream, timeout) in [
        (Stream::Upstream, 0),
        (Stream::Upstream, 150),
        (Stream::Downstream, 150),
    ] {
        let reset = Toxic::ResetPeer {
            timeout: ms(timeout),
        };
        let mut connection = connect(proxy_with_toxic(&fault_proxy, upstream, &reset, stream));
        let started = Instant::now();
        connection.write_all(b"ping").unwrap();
        let (read, ended) = read_until_closed(&mut connection);
        let elapsed = started.elapsed();
        assert_eq!(
            (read, ended),
            (0, Some(ErrorKind::ConnectionReset)),
            "{stream:?} {timeout}"
        );
        assert!(
            elapsed >= ms(timeout) && elapsed < GENEROUS,
            "{stream:?} {timeout}: {elapsed:?}"
        );
    }
}

#[test]
fn slow_close_delays_the_close() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let slow_close = Toxic::SlowClose { delay: ms(300) };

    // Downstream: the server closes at once; the client sees it 300 ms later.
    let address = proxy_with_toxic(
        &fault_proxy,
        closing_server(),
        &slow_close,
        Stream::Downstream,
    );
    let started = Instant::now();
    let mut connection = connect(address);
    assert_eq!(read_until_closed(&mut connection), (0, None));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= ms(290) && elapsed < GENEROUS,
        "downstream: {elapsed:?}"
    );

    // Upstream: the client closes its side; the connection closes 300 ms later.
    let address = proxy_with_toxic(&fault_proxy, echo_server(), &slow_close, Stream::Upstream);
    let mut connection = connect(address);
    round_trip(&mut connection, 10);
    let started = Instant::now();
    connection.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_until_closed(&mut connection), (0, None));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= ms(290) && elapsed < GENEROUS,
        "upstream: {elapsed:?}"
    );

    // Without the toxic the close is prompt.
    let plain = proxy_to(&fault_proxy, "plain", closing_server());
    let started = Instant::now();
    assert_eq!(read_until_closed(&mut connect(plain)), (0, None));
    assert!(started.elapsed() < ms(290), "{:?}", started.elapsed());
}

#[test]
fn slicer_splits_writes_into_small_reads() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    // Pieces of 80 to 120 bytes, 20 ms apart: 1,000 bytes take at least 9 pieces (160 ms).
    let slicer = Toxic::Slicer {
        average_size: 100,
        size_variation: 20,
        delay: Duration::from_micros(20_000),
    };

    let address = proxy_with_toxic(
        &fault_proxy,
        talker_server::<1000>(),
        &slicer,
        Stream::Downstream,
    );
    let mut connection = connect(address);
    let started = Instant::now();
    let mut sizes = Vec::new();
    let mut buffer = [0; 4096];
    while sizes.iter().sum::<usize>() < 1000 {
        sizes.push(connection.read(&mut buffer).unwrap());
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= ms(150) && elapsed < GENEROUS,
        "downstream: {elapsed:?}"
    );
    // A busy machine may merge a few pieces into one read, not most of them.
    assert!(
        sizes.len() >= 4 && median(sizes.clone()) <= 120,
        "downstream: {sizes:?}"
    );

    let (recorder, sizes) = recording_server();
    let address = proxy_with_toxic(&fault_proxy, recorder, &slicer, Stream::Upstream);
    let mut connection = connect(address);
    connection.write_all(&[1; 1000]).unwrap();
    drop(connection);
    let sizes = sizes.recv_timeout(GENEROUS).unwrap();
    assert_eq!(sizes.iter().sum::<usize>(), 1000);
    assert!(
        sizes.len() >= 4 && median(sizes.clone()) <= 120,
        "upstream: {sizes:?}"
    );
}

#[test]
fn limit_data_closes_after_the_limit() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let limit = Toxic::LimitData { bytes: 1000 };

    let address = proxy_with_toxic(
        &fault_proxy,
        talker_server::<10_000>(),
        &limit,
        Stream::Downstream,
    );
    assert_eq!(read_until_closed(&mut connect(address)), (1000, None));

    let (recorder, sizes) = recording_server();
    let address = proxy_with_toxic(&fault_proxy, recorder, &limit, Stream::Upstream);
    let mut connection = connect(address);
    // The proxy may reset the client once it stops reading: only the server's count matters.
    let _ = connection.write_all(&[1; 10_000]);
    let sizes = sizes.recv_timeout(GENEROUS).unwrap();
    assert_eq!(sizes.iter().sum::<usize>(), 1000);
}

#[test]
fn disabling_closes_connections_and_refuses_new_ones_until_enabled() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let address = proxy_to(&fault_proxy, "link", echo_server());
    let mut open = connect(address);
    round_trip(&mut open, 10);

    fault_proxy.set_enabled("link", false).unwrap();
    let started = Instant::now();
    let (read, _) = read_until_closed(&mut open);
    assert_eq!(read, 0);
    assert!(started.elapsed() < GENEROUS);
    let refused = TcpStream::connect(address).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

    fault_proxy.set_enabled("link", true).unwrap();
    round_trip(&mut connect(address), 10);
}

#[test]
fn toxics_change_open_connections_and_removal_restores() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let address = proxy_to(&fault_proxy, "link", echo_server());
    let mut connection = connect(address);
    round_trip(&mut connection, 10);

    let latency = Toxic::Latency {
        latency: ms(500),
        jitter: ms(0),
    };
    fault_proxy
        .add_toxic("link", "slow", &latency, Stream::Upstream, 1.0)
        .unwrap();
    let elapsed = round_trip(&mut connection, 10);
    assert!(
        elapsed >= ms(500) && elapsed < ms(500) + GENEROUS,
        "with latency: {elapsed:?}"
    );
    fault_proxy.remove_toxic("link", "slow").unwrap();
    let elapsed = round_trip(&mut connection, 10);
    assert!(elapsed < ms(500), "after removal: {elapsed:?}");

    // Data a toxic holds is released when it is removed.
    let long = Toxic::Latency {
        latency: ms(20_000),
        jitter: ms(0),
    };
    fault_proxy
        .add_toxic("link", "stuck", &long, Stream::Downstream, 1.0)
        .unwrap();
    let started = Instant::now();
    connection.write_all(b"held").unwrap();
    thread::sleep(ms(100));
    fault_proxy.remove_toxic("link", "stuck").unwrap();
    let mut held = [0; 4];
    connection.read_exact(&mut held).unwrap();
    assert_eq!(&held, b"held");
    assert!(started.elapsed() < GENEROUS, "{:?}", started.elapsed());
}

#[test]
fn a_toxic_with_toxicity_zero_leaves_connections_alone() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let address = proxy_to(&fault_proxy, "link", echo_server());
    let latency = Toxic::Latency {
        latency: ms(1000),
        jitter: ms(0),
    };
    fault_proxy
        .add_toxic("link", "never", &latency, Stream::Upstream, 0.0)
        .unwrap();
    let elapsed = round_trip(&mut connect(address), 10);
    assert!(elapsed < ms(1000), "{elapsed:?}");
}

#[test]
fn reset_restores_every_proxy_and_delete_all_removes_them() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let upstream = echo_server();
    let cut = proxy_to(&fault_proxy, "cut", upstream);
    let slow = proxy_to(&fault_proxy, "slow", upstream);
    fault_proxy.set_enabled("cut", false).unwrap();
    let latency = Toxic::Latency {
        latency: ms(1000),
        jitter: ms(0),
    };
    fault_proxy
        .add_toxic("slow", "latency", &latency, Stream::Upstream, 1.0)
        .unwrap();

    fault_proxy.reset().unwrap();
    round_trip(&mut connect(cut), 10);
    assert!(round_trip(&mut connect(slow), 10) < ms(1000));

    fault_proxy.delete_all().unwrap();
    for address in [cut, slow] {
        let refused = TcpStream::connect(address).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    }
    // A proxy of an existing name replaces it.
    proxy_to(&fault_proxy, "again", upstream);
    let replaced = proxy_to(&fault_proxy, "again", upstream);
    round_trip(&mut connect(replaced), 10);
}

#[test]
fn failures_are_errors_that_name_the_problem() {
    let fault_proxy = FaultProxy::builtin().unwrap();
    let upstream = echo_server();
    let address = proxy_to(&fault_proxy, "link", upstream);
    let latency = Toxic::Latency {
        latency: ms(10),
        jitter: ms(0),
    };
    let says = |result: anyhow::Result<()>, expected: &str| {
        let error = format!("{:#}", result.unwrap_err());
        assert!(
            error.contains(expected),
            "expected `{expected}` in: {error}"
        );
    };
    says(fault_proxy.set_enabled("missing", false), "proxy not found");
    fault_proxy
        .add_toxic("link", "twice", &latency, Stream::Upstream, 1.0)
        .unwrap();
    says(
        fault_proxy.add_toxic("link", "twice", &latency, Stream::Upstream, 1.0),
        "toxic already exists",
    );
    says(
        fault_proxy.remove_toxic("link", "missing"),
        "toxic not found",
    );
    says(
        fault_proxy.add_toxic("missing", "toxic", &latency, Stream::Upstream, 1.0),
        "proxy not found",
    );
    let taken = fault_proxy
        .create_proxy("taken", &address.to_string(), &upstream.to_string())
        .map(drop);
    says(taken, "cannot listen");
}

#[test]
fn an_external_server_is_reached_by_its_url() {
    let server = BuiltinToxiproxy::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}", server.api_address());
    let fault_proxy = FaultProxy::external(&url).unwrap();
    assert_eq!(fault_proxy.description(), url);
    let address = proxy_to(&fault_proxy, "link", echo_server());
    round_trip(&mut connect(address), 10);

    let bare = FaultProxy::external(&server.api_address().to_string()).unwrap();
    bare.delete_all().unwrap();
    assert!(TcpStream::connect(address).is_err());

    drop(server);
    let error = FaultProxy::external(&url).unwrap_err().to_string();
    assert!(error.contains("no Toxiproxy answers"), "{error}");
}
