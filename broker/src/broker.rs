//! The broker's state on one node: config, topic catalog, open partitions, the group
//! coordinator and the producer-id allocator. Handlers get `&Broker`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};
use uuid::Uuid;

use crate::catalog::{Catalog, CatalogError, TopicSpec};
use crate::config::Config;
use crate::group::{GroupCoordinator, GroupSettings};
use crate::partition::Partition;
use crate::producer_ids::ProducerIdAllocator;
use crate::storage::LogConfig;

pub struct Broker {
    pub config: Config,
    pub catalog: Catalog,
    pub groups: Arc<GroupCoordinator>,
    pub producer_ids: ProducerIdAllocator,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Serialises topic creation, deletion and growth.
    topic_changes: Mutex<()>,
    background_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

impl Broker {
    pub async fn open(config: Config) -> anyhow::Result<Arc<Broker>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let catalog = Catalog::open(&config.data_dir.join("catalog.json"))?;
        let producer_ids = ProducerIdAllocator::open(&config.data_dir.join("producer-ids.json"))?;
        let groups = GroupCoordinator::open(
            &config.data_dir.join("groups"),
            GroupSettings {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            },
        )?;
        let broker = Arc::new(Broker {
            config,
            catalog,
            groups: groups.clone(),
            producer_ids,
            partitions: RwLock::new(HashMap::new()),
            topic_changes: Mutex::new(()),
            background_tasks: Mutex::new(Vec::new()),
        });
        for spec in broker.catalog.topics() {
            for index in 0..spec.partitions {
                broker.open_partition(&spec, index)?;
            }
        }
        let expiry = groups.spawn_expiry();
        let retention = tokio::spawn(retention_loop(Arc::downgrade(&broker)));
        broker.background_tasks.lock().extend([expiry, retention]);
        Ok(broker)
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_string(), index))
            .cloned()
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    fn partition_directory(&self, topic: &str, index: i32) -> PathBuf {
        self.config
            .data_dir
            .join("topics")
            .join(format!("{topic}-{index}"))
    }

    fn log_config(&self, spec: &TopicSpec) -> LogConfig {
        let setting = |key: &str| {
            spec.configs
                .get(key)
                .and_then(|value| value.parse::<i64>().ok())
        };
        let retention_bytes = setting("retention.bytes").unwrap_or(self.config.retention_bytes);
        let retention_ms = setting("retention.ms").unwrap_or(self.config.retention_ms);
        let segment_bytes = setting("segment.bytes").map_or(self.config.segment_bytes, |bytes| {
            bytes.max(1024 * 1024) as u64
        });
        LogConfig {
            segment_bytes,
            retention_bytes: (retention_bytes >= 0).then_some(retention_bytes as u64),
            retention_ms: (retention_ms >= 0).then_some(retention_ms),
            ..LogConfig::default()
        }
    }

    fn open_partition(&self, spec: &TopicSpec, index: i32) -> anyhow::Result<()> {
        let directory = self.partition_directory(&spec.name, index);
        let partition = Partition::open(
            &spec.name,
            index,
            &directory,
            self.log_config(spec),
            self.config.fsync,
        )
        .map_err(|error| anyhow::anyhow!("opening {}: {error}", directory.display()))?;
        self.partitions
            .write()
            .insert((spec.name.clone(), index), Arc::new(partition));
        Ok(())
    }

    /// Creates a topic and opens its partitions. Leftover files of an earlier topic of the
    /// same name (deleted while the broker crashed) are removed first: a new topic is empty.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicSpec, CatalogError> {
        let _serialised = self.topic_changes.lock();
        let spec = TopicSpec {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
        };
        crate::catalog::validate_topic_name(name)?;
        for index in 0..partitions.max(0) {
            let _ = std::fs::remove_dir_all(self.partition_directory(name, index));
        }
        self.catalog.create(spec.clone())?;
        for index in 0..partitions {
            if let Err(error) = self.open_partition(&spec, index) {
                warn!(topic = name, index, %error, "could not open a new partition");
            }
        }
        info!(topic = name, partitions, "created topic");
        Ok(spec)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicSpec, CatalogError> {
        let _serialised = self.topic_changes.lock();
        let spec = self.catalog.delete(name)?;
        for index in 0..spec.partitions {
            let removed = self.partitions.write().remove(&(name.to_string(), index));
            if let Some(partition) = removed.and_then(|partition| Arc::try_unwrap(partition).ok()) {
                if let Err(error) = partition.delete() {
                    warn!(topic = name, index, %error, "could not delete partition files");
                }
            } else {
                let _ = std::fs::remove_dir_all(self.partition_directory(name, index));
            }
        }
        info!(topic = name, "deleted topic");
        Ok(spec)
    }

    pub fn create_partitions(&self, name: &str, count: i32) -> Result<(), CatalogError> {
        let _serialised = self.topic_changes.lock();
        let old = self.catalog.grow_partitions(name, count)?;
        let spec = self
            .catalog
            .topic(name)
            .ok_or_else(|| CatalogError::NotFound(name.into()))?;
        for index in old..count {
            let _ = std::fs::remove_dir_all(self.partition_directory(name, index));
            if let Err(error) = self.open_partition(&spec, index) {
                warn!(topic = name, index, %error, "could not open a new partition");
            }
        }
        Ok(())
    }

    /// Syncs every log and the group journal; called after connections have drained.
    pub async fn close(&self) -> anyhow::Result<()> {
        for task in self.background_tasks.lock().drain(..) {
            task.abort();
        }
        let mut first_error = None;
        for partition in self.all_partitions() {
            if let Err(error) = partition.sync() {
                warn!(topic = %partition.topic, index = partition.index, %error, "sync at shutdown failed");
                first_error.get_or_insert(error);
            }
        }
        self.groups.shutdown().await;
        match first_error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

async fn retention_loop(broker: std::sync::Weak<Broker>) {
    let Some(interval_ms) = broker
        .upgrade()
        .map(|b| b.config.retention_check_interval_ms)
    else {
        return;
    };
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
        let outcome = tokio::task::spawn_blocking(move || {
            for partition in partitions {
                if let Err(error) = partition.enforce_retention(now) {
                    warn!(topic = %partition.topic, index = partition.index, %error, "retention failed");
                }
            }
        })
        .await;
        if outcome.is_err() {
            return;
        }
    }
}
