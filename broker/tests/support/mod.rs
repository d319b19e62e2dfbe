//! Launches `chronik-server` as a real process for integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod relay;
pub use relay::Relay;

/// How long a broker may take to start serving.
pub const START_TIMEOUT_MS: u64 = 20_000;

/// Ports below the kernel's ephemeral range (32768 and up by default): a broker binds its
/// ports again when restarted, and a port from the ephemeral range may meanwhile have become
/// some outgoing connection's local port (the bench picks its ports the same way).
const STABLE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free loopback port from [`STABLE_PORTS`], never the same twice in one test process.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos())
        .wrapping_add(std::process::id().wrapping_mul(40_503));
    let span = u32::from(STABLE_PORTS.end - STABLE_PORTS.start);
    for attempt in 0..200u32 {
        let mixed = seed
            .wrapping_add(attempt.wrapping_mul(7_919))
            .wrapping_mul(2_654_435_761);
        let port = STABLE_PORTS.start + (mixed % span) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free loopback port in {STABLE_PORTS:?}");
}

/// The relays of a cluster's directed links, by (from, to) node id.
#[derive(Default)]
pub struct Relays {
    links: std::collections::BTreeMap<(u64, u64), Relay>,
}

impl Relays {
    /// Cuts every link to and from `node`.
    pub fn isolate(&self, node: u64) {
        self.touching(node).for_each(Relay::cut);
    }

    /// Heals every link to and from `node`.
    pub fn rejoin(&self, node: u64) {
        self.touching(node).for_each(Relay::heal);
    }

    fn touching(&self, node: u64) -> impl Iterator<Item = &Relay> {
        self.links
            .iter()
            .filter(move |((from, to), _)| *from == node || *to == node)
            .map(|(_, relay)| relay)
    }
}

pub struct BrokerProcess {
    pub data_dir: PathBuf,
    pub kafka_port: u16,
    pub metrics_port: u16,
    pub raft_port: u16,
    pub extra_env: Vec<(String, String)>,
    /// Cluster membership: this node's id and `--peers`.
    pub node_id: u64,
    pub peers: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl BrokerProcess {
    pub fn start(data_dir: &Path) -> BrokerProcess {
        Self::start_with_env(data_dir, &[])
    }

    /// A broker alone, with its own object store beside its data directory (`env` may name
    /// another): the default, `object-store` in the data directory's parent, would be shared
    /// by every test whose data directory is a temporary directory, and a broker starting on
    /// an empty data directory restores whatever snapshots it finds there.
    pub fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> BrokerProcess {
        let object_store = data_dir.with_extension("object-store");
        let mut extra_env = vec![(
            "OBJECT_STORE_PATH".to_string(),
            object_store.display().to_string(),
        )];
        extra_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut broker = BrokerProcess {
            data_dir: data_dir.to_path_buf(),
            kafka_port: free_port(),
            metrics_port: free_port(),
            raft_port: free_port(),
            extra_env,
            node_id: 1,
            peers: String::new(),
            child: None,
            log_path: data_dir.with_extension("log"),
        };
        broker.launch();
        broker
    }

    /// Starts `nodes` brokers forming one Raft cluster (node ids 1..=nodes) and waits until
    /// every one of them serves.
    pub fn start_cluster(directory: &Path, nodes: u64, env: &[(&str, &str)]) -> Vec<BrokerProcess> {
        Self::start_cluster_dialing(directory, nodes, env, |_, _, address| address)
    }

    /// Like `start_cluster`, with every directed link between nodes through its own relay, so
    /// a test can cut the network between them.
    pub fn start_cluster_through_relays(
        directory: &Path,
        nodes: u64,
        env: &[(&str, &str)],
    ) -> (Vec<BrokerProcess>, Relays) {
        let mut relays = Relays::default();
        let brokers = Self::start_cluster_dialing(directory, nodes, env, |from, to, address| {
            let relay = Relay::start(address);
            let relayed = relay.address();
            relays.links.insert((from, to), relay);
            relayed
        });
        (brokers, relays)
    }

    /// Starts a cluster where node `from` dials node `to` at `dial(from, to, address of to)`.
    fn start_cluster_dialing(
        directory: &Path,
        nodes: u64,
        env: &[(&str, &str)],
        mut dial: impl FnMut(u64, u64, SocketAddr) -> SocketAddr,
    ) -> Vec<BrokerProcess> {
        let raft_ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
        let raft_address =
            |id: u64| SocketAddr::from(([127, 0, 0, 1], raft_ports[id as usize - 1]));
        let mut brokers: Vec<BrokerProcess> = (1..=nodes)
            .map(|id| {
                let peers = (1..=nodes)
                    .map(|peer| {
                        let address = if peer == id {
                            raft_address(peer)
                        } else {
                            dial(id, peer, raft_address(peer))
                        };
                        format!("{peer}={address}")
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let data_dir = directory.join(format!("node-{id}"));
                BrokerProcess {
                    log_path: data_dir.with_extension("log"),
                    data_dir,
                    kafka_port: free_port(),
                    metrics_port: free_port(),
                    raft_port: raft_ports[id as usize - 1],
                    extra_env: env
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    node_id: id,
                    peers,
                    child: None,
                }
            })
            .collect();
        for broker in &mut brokers {
            broker.spawn();
        }
        for broker in &mut brokers {
            broker.wait_until_healthy();
        }
        brokers
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGSTOP / SIGCONT.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    /// Every node's Kafka address, comma-separated: a client's bootstrap list for a cluster.
    pub fn bootstrap_all(brokers: &[BrokerProcess]) -> String {
        brokers
            .iter()
            .map(BrokerProcess::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn kafka_address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.kafka_port))
    }

    fn launch(&mut self) {
        self.spawn();
        self.wait_until_healthy();
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chronik-server"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.bootstrap())
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .arg("--raft-listen")
            .arg(format!("127.0.0.1:{}", self.raft_port))
            .arg("--node-id")
            .arg(self.node_id.to_string())
            .arg("--peers")
            .arg(&self.peers)
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("chronik-server starts");
        self.child = Some(child);
    }

    fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "broker exited during start-up with {status}; log:\n{}",
                    self.log()
                );
            }
            if self
                .http_get("/health")
                .is_some_and(|body| body.contains("ok"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("broker did not become healthy; log:\n{}", self.log());
    }

    /// GET a path on the metrics listener; the body, or None when unreachable.
    pub fn http_get(&self, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().unwrap().is_none())
    }

    /// SIGKILL: no chance to sync or answer anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited with status 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        send_sigterm(child.id());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        false
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker before restarting it");
        self.launch();
    }

    /// Restarts the stopped brokers at `positions` together, then waits until each serves
    /// (nodes that make a majority only together cannot serve one by one).
    pub fn restart_together(brokers: &mut [BrokerProcess], positions: &[usize]) {
        for position in positions {
            let broker = &mut brokers[*position];
            assert!(
                broker.child.is_none(),
                "stop the broker before restarting it"
            );
            broker.spawn();
        }
        for position in positions {
            brokers[*position].wait_until_healthy();
        }
    }
}

fn send_sigterm(pid: u32) {
    signal(pid, "-TERM");
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- broker log ({}) ---\n{}",
                self.log_path.display(),
                self.log()
            );
        }
        self.kill();
    }
}

pub mod kafka {
    //! Small rdkafka helpers shared by the client tests.
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::message::Message;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    pub fn config(bootstrap: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("broker.address.family", "v4");
        config
    }

    pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
        try_create_topic(bootstrap, name, partitions, 1)
            .await
            .unwrap();
    }

    /// CreateTopics of one topic; the broker's error code when it refuses.
    pub async fn try_create_topic(
        bootstrap: &str,
        name: &str,
        partitions: i32,
        replication: i32,
    ) -> Result<(), rdkafka::types::RDKafkaErrorCode> {
        let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
        let results = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .unwrap();
        results
            .into_iter()
            .next()
            .unwrap()
            .map(|_| ())
            .map_err(|(_, code)| code)
    }

    pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
        let mut config = config(bootstrap);
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        for (key, value) in extra {
            config.set(*key, *value);
        }
        config.create().unwrap()
    }

    /// One acknowledged message: where it landed and what it carried.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Acked {
        pub partition: i32,
        pub offset: i64,
        pub key: String,
        pub value: Vec<u8>,
    }

    pub async fn produce_keyed(
        producer: &FutureProducer,
        topic: &str,
        messages: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Vec<Acked> {
        let sends = messages.into_iter().map(|(key, value)| async move {
            let record = FutureRecord::to(topic).key(&key).payload(&value);
            let delivery = producer.send(record, Duration::from_secs(30)).await;
            let delivery = delivery.unwrap_or_else(|(error, _)| panic!("delivery failed: {error}"));
            Acked {
                partition: delivery.partition,
                offset: delivery.offset,
                key,
                value,
            }
        });
        futures::future::join_all(sends).await
    }

    pub fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
        let mut config = config(bootstrap);
        config
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000");
        for (key, value) in extra {
            config.set(*key, *value);
        }
        config.create().unwrap()
    }

    /// Polls until `expected` messages arrived or the timeout passes.
    pub fn consume(consumer: &BaseConsumer, expected: usize, timeout: Duration) -> Vec<Acked> {
        let deadline = Instant::now() + timeout;
        let mut received = Vec::new();
        while received.len() < expected && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => received.push(Acked {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    value: message.payload().unwrap_or_default().to_vec(),
                }),
                // A broker that was killed on purpose: the client reconnects elsewhere.
                Some(Err(rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure
                    | rdkafka::types::RDKafkaErrorCode::AllBrokersDown,
                ))) => {}
                Some(Err(error)) => panic!("consume failed: {error}"),
                None => {}
            }
        }
        received
    }

    /// Every acknowledged message was consumed exactly once, at its acknowledged offset, and
    /// each partition's messages arrived in offset order.
    pub fn assert_exactly_once_in_order(acked: &[Acked], consumed: &[Acked]) {
        let mut by_position: HashMap<(i32, i64), &Acked> = HashMap::new();
        for message in consumed {
            let previous = by_position.insert((message.partition, message.offset), message);
            assert!(previous.is_none(), "duplicate delivery of {message:?}");
        }
        for message in acked {
            let found = by_position.get(&(message.partition, message.offset));
            assert_eq!(
                found,
                Some(&message),
                "acknowledged message missing or different"
            );
        }
        assert_eq!(
            consumed.len(),
            acked.len(),
            "consumed messages that were never produced"
        );
        let mut last_offset: HashMap<i32, i64> = HashMap::new();
        for message in consumed {
            let last = last_offset.entry(message.partition).or_insert(-1);
            assert!(
                message.offset > *last,
                "partition {} reordered",
                message.partition
            );
            *last = message.offset;
        }
    }
}

/// The metadata leader (controller, group coordinator) as a node's Metadata answer says.
pub fn controller(broker: &BrokerProcess) -> u64 {
    use kafka_protocol::messages::MetadataRequest;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut client = wire::RawClient::connect(broker.kafka_address());
        let response = client.call(9, &MetadataRequest::default().with_topics(Some(vec![])));
        if response.controller_id.0 > 0 {
            return response.controller_id.0 as u64;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no controller");
}

pub mod wire {
    //! A minimal blocking Kafka client over a raw socket, for requests real clients will not
    //! send on demand (exact retries, bad CRCs).
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

    pub struct RawClient {
        stream: TcpStream,
        correlation_id: i32,
    }

    impl RawClient {
        pub fn connect(address: SocketAddr) -> RawClient {
            let stream = TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            RawClient {
                stream,
                correlation_id: 0,
            }
        }

        pub fn send_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
            self.stream.write_all(&(frame.len() as i32).to_be_bytes())?;
            self.stream.write_all(frame)
        }

        pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
            let mut size = [0u8; 4];
            self.stream.read_exact(&mut size)?;
            let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
            self.stream.read_exact(&mut frame)?;
            Ok(Bytes::from(frame))
        }

        /// Sends a request and waits for its answer.
        pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response
        where
            R::Response: Decodable + HeaderVersion,
        {
            let correlation_id = self.send(version, request);
            self.receive::<R>(version, correlation_id).unwrap()
        }

        /// Sends a request without waiting for its answer; returns its correlation id.
        pub fn send<R: Request>(&mut self, version: i16, request: &R) -> i32 {
            self.correlation_id += 1;
            let api_key = ApiKey::try_from(R::KEY).unwrap();
            let header = RequestHeader::default()
                .with_request_api_key(R::KEY)
                .with_request_api_version(version)
                .with_correlation_id(self.correlation_id)
                .with_client_id(Some(StrBytes::from_static_str("raw-test")));
            let mut frame = BytesMut::new();
            header
                .encode(&mut frame, api_key.request_header_version(version))
                .unwrap();
            request.encode(&mut frame, version).unwrap();
            self.send_frame(&frame).unwrap();
            self.correlation_id
        }

        /// Reads the next answer, which must be the one to `correlation_id`; an error when
        /// none arrives within the read timeout.
        pub fn receive<R: Request>(
            &mut self,
            version: i16,
            correlation_id: i32,
        ) -> std::io::Result<R::Response>
        where
            R::Response: Decodable + HeaderVersion,
        {
            let mut response = self.read_frame()?;
            let header =
                ResponseHeader::decode(&mut response, R::Response::header_version(version))
                    .unwrap();
            assert_eq!(header.correlation_id, correlation_id);
            Ok(R::Response::decode(&mut response, version).unwrap())
        }

        /// Sends every frame at once. Frames go out in two writes, so by default Nagle's
        /// algorithm and delayed acknowledgements hold each request back for tens of
        /// milliseconds.
        pub fn set_nodelay(&self) {
            self.stream.set_nodelay(true).unwrap();
        }

        pub fn set_read_timeout(&self, timeout: Duration) {
            self.stream.set_read_timeout(Some(timeout)).unwrap();
        }
    }
}
