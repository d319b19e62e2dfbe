//! A real S3-compatible server for tests: moto's `moto_server` (PyPI `moto[server]`, installed by
//! `ci/install-deps`) as a child process on a free loopback port, killed when dropped (also
//! when the test panics) and with the test process (`PR_SET_PDEATHSIG`).
//!
//! Include it with `#[path = "support/moto.rs"] mod moto;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer after it was started (it imports a lot of Python).
pub const START_TIMEOUT_MS: u64 = 60_000;

/// Credentials moto accepts (any will do); set them where the client reads credentials.
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

const INSTALL_HINT: &str =
    "moto_server (PyPI `moto[server]`) is needed by this test: run ci/install-deps";

pub struct MotoServer {
    pub port: u16,
    child: Child,
    log_path: PathBuf,
    _log_directory: tempfile::TempDir,
}

impl MotoServer {
    /// Starts `moto_server` and waits until it answers HTTP. Panics, naming `ci/install-deps`,
    /// when it is not installed or does not come up.
    pub fn start() -> MotoServer {
        let port = free_port();
        let log_directory = tempfile::tempdir().expect("temporary directory for the moto log");
        let log_path = log_directory.path().join("moto.log");
        let log = std::fs::File::create(&log_path).expect("moto log file");
        let mut command = Command::new("moto_server");
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("moto log file"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                panic!("{INSTALL_HINT} (`moto_server` is not on PATH)")
            }
            Err(error) => panic!("cannot start moto_server: {error}; {INSTALL_HINT}"),
        };
        let mut server = MotoServer {
            port,
            child,
            log_path,
            _log_directory: log_directory,
        };
        server.wait_until_answering();
        server
    }

    /// `http://127.0.0.1:PORT`, for `S3_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` with a plain `PUT /bucket` (moto does not check signatures).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self
            .request("PUT", &format!("/{bucket}"))
            .unwrap_or_else(|error| panic!("creating bucket {bucket}: {error}"));
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    }

    /// What moto printed so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_until_answering(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            if let Some(status) = self.child.try_wait().expect("moto_server status") {
                panic!(
                    "moto_server exited at start ({status}); {INSTALL_HINT}\n{}",
                    self.log()
                );
            }
            if self.request("GET", "/").is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {} within {START_TIMEOUT_MS} ms\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One HTTP/1.1 request without a body; the status code and the response body.
    fn request(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            port = self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not an HTTP response: {response:?}"),
                )
            })?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free loopback port")
        .local_addr()
        .expect("local address")
        .port()
}
