//! A TCP relay between two nodes that a test can cut and heal, standing in for the network of
//! one directed link. Cut, it closes its connections and stops listening, so a dial is refused
//! as it would be across a real partition; healed, it listens on the same port again.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How often a relay's listener looks for connections and for a change of state.
const POLL_INTERVAL_MS: u64 = 5;

pub struct Relay {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// Relays connections on a new loopback port to `upstream`. The port is one of
    /// [`super::free_port`]'s, so no outgoing connection takes it while the relay is cut.
    pub fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", super::free_port()))
            .expect("a loopback port for a relay");
        let address = listener.local_addr().expect("a bound address");
        let relay = Relay {
            address,
            cut: Arc::new(AtomicBool::new(false)),
            stopped: Arc::new(AtomicBool::new(false)),
            connections: Arc::new(Mutex::new(Vec::new())),
        };
        let cut = relay.cut.clone();
        let stopped = relay.stopped.clone();
        let connections = relay.connections.clone();
        thread::spawn(move || serve(listener, address, upstream, &cut, &stopped, &connections));
        relay
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every relayed connection and refuses new ones until `heal`.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    /// Stops listening and closes the relayed connections.
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.cut();
    }
}

/// Accepts while not cut, drops the listener while cut, binds the port again on heal, and
/// returns once the relay is dropped.
fn serve(
    listener: TcpListener,
    address: SocketAddr,
    upstream: SocketAddr,
    cut: &AtomicBool,
    stopped: &AtomicBool,
    connections: &Mutex<Vec<TcpStream>>,
) {
    let mut listener = Some(listener);
    while !stopped.load(Ordering::SeqCst) {
        match (&listener, cut.load(Ordering::SeqCst)) {
            (Some(_), true) => listener = None,
            (None, false) => listener = TcpListener::bind(address).ok(),
            (Some(open), false) => {
                open.set_nonblocking(true).expect("a non-blocking listener");
                match open.accept() {
                    Ok((inbound, _)) => relay(inbound, upstream, connections),
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => listener = None,
                }
            }
            (None, true) => {}
        }
        thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// Copies both ways between `inbound` and a new connection to `upstream`, on two threads;
/// when either side ends, both are closed.
fn relay(inbound: TcpStream, upstream: SocketAddr, connections: &Mutex<Vec<TcpStream>>) {
    let _ = inbound.set_nonblocking(false);
    let Ok(outbound) = TcpStream::connect(upstream) else {
        return;
    };
    let mut registered = connections.lock().unwrap();
    for stream in [&inbound, &outbound] {
        if let Ok(clone) = stream.try_clone() {
            registered.push(clone);
        }
    }
    drop(registered);
    for (from, to) in [(&inbound, &outbound), (&outbound, &inbound)] {
        let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
}
