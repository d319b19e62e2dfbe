//! The broker's state on one node: config, the replicated catalog, the local partition
//! replicas, the cluster (Raft) handle, the group coordinator and the producer-id allocator.
//! Handlers get `&Broker`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tracing::{info, warn};
use uuid::Uuid;

use crate::catalog::{BrokerAddress, Catalog, MetadataCommand, TopicSpec, METADATA_GROUP_ID};
use crate::cluster::membership::parse_peers;
use crate::cluster::replicas::LocalReplicas;
use crate::cluster::{Cluster, ClusterSettings, MetadataError, PartitionOpener};
use crate::config::{Config, FsyncPolicy};
use crate::group::{GroupCoordinator, GroupSettings};
use crate::misbehaviour::{self, Misbehaving};
use crate::partition::Partition;
use crate::producer_ids::ProducerIdAllocator;
use crate::raft::engine_store::EngineLogStore;
use crate::raft::entry_cache::{CachedLogStore, ENTRY_CACHE_BUDGET_BYTES};
use crate::snapshot::objects::SnapshotObjects;
use crate::storage::LogConfig;

/// How long a metadata change (topic creation, ...) may take to apply.
pub const METADATA_CHANGE_TIMEOUT_MS: u64 = 10_000;
/// How often replicas sync their logs and record their checkpoint.
pub const CHECKPOINT_INTERVAL_MS: u64 = 2_000;
/// How often the Raft log store deletes files of compacted entries.
pub const RAFT_LOG_PURGE_INTERVAL_MS: u64 = 1_000;
/// How often an unregistered node retries registering its client address.
const REGISTRATION_RETRY_MS: u64 = 250;

pub struct Broker {
    pub config: Config,
    pub catalog: Arc<Catalog>,
    pub cluster: Cluster,
    pub replicas: Arc<LocalReplicas>,
    pub groups: Arc<GroupCoordinator>,
    pub producer_ids: ProducerIdAllocator,
    /// Deliberate misbehaviour for testing the bench (debug builds only); `None` normally.
    pub misbehaving: Option<Misbehaving>,
    background_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// The log settings of a topic: its configs over the broker defaults.
pub fn log_config(config: &Config, spec: &TopicSpec) -> LogConfig {
    let setting = |key: &str| {
        spec.configs
            .get(key)
            .and_then(|value| value.parse::<i64>().ok())
    };
    let retention_bytes = setting("retention.bytes").unwrap_or(config.retention_bytes);
    let retention_ms = setting("retention.ms").unwrap_or(config.retention_ms);
    let segment_bytes = setting("segment.bytes")
        .map_or(config.segment_bytes, |bytes| bytes.max(1024 * 1024) as u64);
    LogConfig {
        segment_bytes,
        retention_bytes: (retention_bytes >= 0).then_some(retention_bytes as u64),
        retention_ms: (retention_ms >= 0).then_some(retention_ms),
        ..LogConfig::default()
    }
}

/// A replica's directory: named by its Raft group too, so a re-created topic never reuses
/// the files of an old one.
fn partition_directory(data_dir: &std::path::Path, spec: &TopicSpec, index: i32) -> PathBuf {
    let group = spec.assignments[index as usize].group_id;
    data_dir
        .join("partitions")
        .join(format!("{}-{index}.g{group}", spec.name))
}

impl Broker {
    pub async fn open(config: Config) -> anyhow::Result<Arc<Broker>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let misbehaving = misbehaviour::activate(config.test_misbehaviour);
        let node_id = config.node_id as u64;
        let mut peers =
            parse_peers(&config.peers).map_err(|error| anyhow::anyhow!("--peers: {error}"))?;
        peers.remove(&node_id);
        let mut nodes: Vec<i32> = peers.keys().map(|id| *id as i32).collect();
        nodes.push(config.node_id);
        let catalog = Arc::new(Catalog::new(&nodes));
        let replicas = Arc::new(LocalReplicas::default());
        let engine = Arc::new(EngineLogStore::open(&config.data_dir.join("raft"))?);
        let store: Arc<dyn crate::raft::log_store::RaftLogStore> = Arc::new(CachedLogStore::new(
            engine.clone(),
            ENTRY_CACHE_BUDGET_BYTES,
        ));
        let opener: PartitionOpener = {
            let config = config.clone();
            Arc::new(move |spec: &TopicSpec, index: i32| {
                let directory = partition_directory(&config.data_dir, spec, index);
                let group_id = spec.assignments[index as usize].group_id;
                let (partition, applied) = Partition::open(
                    &spec.name,
                    index,
                    group_id,
                    &directory,
                    log_config(&config, spec),
                )
                .map_err(|error| anyhow::anyhow!("opening {}: {error}", directory.display()))?;
                Ok((Arc::new(partition), applied))
            })
        };
        let tick_ms = (config.raft_heartbeat_interval_ms / 2).max(10);
        let settings = ClusterSettings {
            node_id,
            raft_listen: config.raft_listen,
            peers,
            tick: Duration::from_millis(tick_ms),
            heartbeat_ticks: 2,
            election_ticks: ((config.raft_election_timeout_ms / tick_ms) as usize).max(3),
            sync_writes: config.fsync == FsyncPolicy::Always,
            snapshots: config.snapshots.clone(),
            data_dir: config.data_dir.clone(),
        };
        let objects = SnapshotObjects::open(&config.object_store, &config.data_dir)?;
        info!(store = %objects.describe(), "object store for snapshots");
        let groups = GroupCoordinator::open(
            &config.data_dir.join("groups"),
            GroupSettings {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            },
        )?;
        let offsets = groups.store().clone();
        let cluster = Cluster::start(
            settings,
            store,
            catalog.clone(),
            offsets,
            replicas.clone(),
            opener,
            objects,
        )
        .await?;
        let producer_ids =
            ProducerIdAllocator::open(&config.data_dir.join("producer-ids.json"), node_id)?;
        let broker = Arc::new(Broker {
            config,
            catalog,
            cluster,
            replicas,
            groups: groups.clone(),
            producer_ids,
            misbehaving,
            background_tasks: Mutex::new(Vec::new()),
        });
        let tasks = [
            groups.spawn_expiry(),
            tokio::spawn(every_replica(
                Arc::downgrade(&broker),
                broker.config.retention_check_interval_ms,
                "retention",
                Partition::enforce_retention,
            )),
            tokio::spawn(every_replica(
                Arc::downgrade(&broker),
                CHECKPOINT_INTERVAL_MS,
                "checkpoint",
                |partition, _| partition.checkpoint(),
            )),
            tokio::spawn(register(Arc::downgrade(&broker))),
            tokio::spawn(purge_raft_log(Arc::downgrade(&engine))),
        ];
        broker.background_tasks.lock().extend(tasks);
        broker
            .groups
            .set_replicator(Arc::new(ReplicatedGroups(Arc::downgrade(&broker))));
        Ok(broker)
    }

    /// The local replica of a partition, if this node holds one.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let spec = self.catalog.topic(topic)?;
        let assignment = spec.assignments.get(usize::try_from(index).ok()?)?;
        self.replicas.get(assignment.group_id)
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.replicas.all()
    }

    /// Whether this node coordinates consumer groups: it leads the metadata group and has
    /// applied everything committed before its term (so the replicated group state it
    /// serves from is complete).
    pub fn is_coordinator(&self) -> bool {
        self.coordinator_term().is_some()
    }

    /// The metadata term in which this node coordinates consumer groups, if it does.
    pub fn coordinator_term(&self) -> Option<u64> {
        let view = self.cluster.view(METADATA_GROUP_ID);
        let leads = view.is_leader && view.leader == self.config.node_id as u64;
        (leads && view.applied_own_term).then_some(view.term)
    }

    /// Ready to serve: a metadata leader is known and this node's address is registered.
    pub fn is_ready(&self) -> bool {
        self.cluster.metadata_leader().is_some()
            && self.catalog.broker(self.config.node_id).is_some()
    }

    async fn change_metadata(&self, command: MetadataCommand) -> Result<(), MetadataError> {
        self.catalog.check(&command)?;
        let timeout = Duration::from_millis(METADATA_CHANGE_TIMEOUT_MS);
        self.cluster.change_metadata(command, timeout).await
    }

    /// Creates a topic through the metadata group; returns it once applied on this node.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicSpec, MetadataError> {
        let command = MetadataCommand::CreateTopic {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
        };
        self.change_metadata(command).await?;
        info!(
            topic = name,
            partitions, replication_factor, "created topic"
        );
        self.catalog.topic(name).ok_or(MetadataError::Unavailable)
    }

    pub async fn delete_topic(&self, name: &str) -> Result<TopicSpec, MetadataError> {
        let spec = self.catalog.topic(name);
        self.change_metadata(MetadataCommand::DeleteTopic {
            name: name.to_string(),
        })
        .await?;
        spec.ok_or(MetadataError::Unavailable)
    }

    pub async fn create_partitions(&self, name: &str, count: i32) -> Result<(), MetadataError> {
        self.change_metadata(MetadataCommand::CreatePartitions {
            name: name.to_string(),
            count,
        })
        .await
    }

    /// Checkpoints every replica and syncs the group journal; stops replication. Called after
    /// connections have drained.
    pub async fn close(&self) -> anyhow::Result<()> {
        for task in self.background_tasks.lock().drain(..) {
            task.abort();
        }
        self.cluster.shutdown().await;
        let partitions = self.all_partitions();
        let checkpointed = tokio::task::spawn_blocking(move || {
            let mut first_error = None;
            for partition in partitions {
                if let Err(error) = partition.checkpoint() {
                    warn!(topic = %partition.topic, index = partition.index, %error, "checkpoint at shutdown failed");
                    first_error.get_or_insert(error);
                }
            }
            first_error
        })
        .await?;
        self.groups.shutdown().await;
        match checkpointed {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

/// Writes committed group offsets and Stable group generations through the metadata Raft
/// group, so they survive the loss of the coordinator's node.
struct ReplicatedGroups(std::sync::Weak<Broker>);

impl crate::group::GroupReplicator for ReplicatedGroups {
    fn coordinator_term(&self) -> Option<u64> {
        self.0.upgrade()?.coordinator_term()
    }

    fn replicate(
        &self,
        event: crate::group::GroupEvent,
    ) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let broker = self.0.upgrade().ok_or("the broker is shutting down")?;
            let timeout = Duration::from_millis(METADATA_CHANGE_TIMEOUT_MS);
            let command = MetadataCommand::GroupOffsets(event);
            broker
                .cluster
                .change_metadata(command, timeout)
                .await
                .map_err(|error| error.to_string())
        })
    }
}

/// Registers this node's client address in the catalog (until it is there).
async fn register(broker: std::sync::Weak<Broker>) {
    loop {
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let (host, port) = broker.config.advertised();
        let address = BrokerAddress {
            node_id: broker.config.node_id,
            host,
            port,
        };
        if broker.catalog.broker(address.node_id).as_ref() == Some(&address) {
            return;
        }
        let timeout = Duration::from_millis(REGISTRATION_RETRY_MS * 4);
        let _ = broker
            .cluster
            .change_metadata(MetadataCommand::RegisterBroker(address), timeout)
            .await;
        drop(broker);
        tokio::time::sleep(Duration::from_millis(REGISTRATION_RETRY_MS)).await;
    }
}

/// Every [`RAFT_LOG_PURGE_INTERVAL_MS`], lets the Raft log store delete files that hold only
/// compacted entries. Ends with the store.
async fn purge_raft_log(store: std::sync::Weak<EngineLogStore>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(RAFT_LOG_PURGE_INTERVAL_MS));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(store) = store.upgrade() else {
            return;
        };
        let purged = tokio::task::spawn_blocking(move || store.purge()).await;
        match purged {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "raft log purge failed"),
            Err(_) => return,
        }
    }
}

/// Every `interval_ms`, runs `job` on every local replica, off the async threads (it does
/// blocking I/O). Ends with the broker.
async fn every_replica(
    broker: std::sync::Weak<Broker>,
    interval_ms: u64,
    what: &'static str,
    job: fn(&Partition, i64) -> Result<(), crate::storage::StorageError>,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms.max(100)));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let partitions = broker.all_partitions();
        drop(broker);
        let now = now_ms();
        let done = tokio::task::spawn_blocking(move || {
            for partition in partitions {
                if let Err(error) = job(&partition, now) {
                    warn!(topic = %partition.topic, index = partition.index, %error, "{what} failed");
                }
            }
        })
        .await;
        if done.is_err() {
            return;
        }
    }
}
