//! The node's part in the cluster: Raft membership from configuration, the transport to the
//! peers, the Raft loop thread, and the async handle handlers use to propose.
//!
//! Every partition is a Raft group over its replicas, and the catalog is the metadata group
//! over all nodes. A node without peers is a one-member cluster on the same path.

pub mod entry;
pub mod leadership;
pub mod membership;
mod raft_gauges;
mod raft_loop;
pub mod replicas;
mod snapshots;
mod vote_abstention;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::info;

use crate::catalog::{Catalog, CatalogError, MetadataCommand, TopicSpec, METADATA_GROUP_ID};
use crate::group::offsets::OffsetStore;
use crate::partition::{AppendError, AppendOutcome, Partition};
use crate::raft::log_store::RaftLogStore;
use crate::raft::multi_raft::{MultiRaft, ProposeError, RaftSettings};
use crate::transport::{Transport, TransportLimits};
use entry::EntryKind;
use replicas::LocalReplicas;

/// Commands queued for the Raft loop before proposers wait.
pub const COMMAND_QUEUE: usize = 4096;
/// Bytes queued per peer before Raft messages to it are shed (Raft resends what is lost).
pub const TRANSPORT_QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// Opens the local replica of a topic's partition; returns it with its applied Raft index.
pub type PartitionOpener =
    Arc<dyn Fn(&TopicSpec, i32) -> anyhow::Result<(Arc<Partition>, u64)> + Send + Sync>;

/// What became of a proposal.
#[derive(Debug)]
pub enum Applied {
    Partition(Result<AppendOutcome, AppendError>),
    Metadata(Result<(), CatalogError>),
    NotProposed(ProposeError),
}

/// A queued partition append; [`Proposed::outcome`] waits for it to be applied.
pub struct Proposed {
    wait: bool,
    /// `None`: not queued (replication stopped), or nothing to wait for (acks=0).
    queued: Option<oneshot::Receiver<Applied>>,
}

impl Proposed {
    /// The applied outcome (`None` for acks=0, which waits for nothing).
    pub async fn outcome(self, timeout: Duration) -> Result<Option<AppendOutcome>, AppendError> {
        let Some(applied) = self.queued else {
            return if self.wait {
                Err(AppendError::Storage("replication stopped".into()))
            } else {
                Ok(None)
            };
        };
        match tokio::time::timeout(timeout, applied).await {
            Ok(Ok(Applied::Partition(result))) => result.map(Some),
            Ok(Ok(Applied::NotProposed(ProposeError::NotLeader { leader }))) => {
                Err(AppendError::NotLeader {
                    leader: leader as i32,
                })
            }
            Ok(Ok(Applied::NotProposed(other))) => Err(AppendError::Storage(other.to_string())),
            Ok(Ok(Applied::Metadata(_))) => Err(AppendError::Storage("mismatched answer".into())),
            Ok(Err(_)) => Err(AppendError::Storage("replication stopped".into())),
            Err(_) => Err(AppendError::TimedOut),
        }
    }
}

pub(crate) enum Command {
    Propose {
        group: u64,
        kind: EntryKind,
        body: bytes::Bytes,
        proposal_id: u64,
        reply: Option<oneshot::Sender<Applied>>,
    },
    Inbound(crate::transport::InboundBatch),
    Snapshot(snapshots::SnapshotEvent),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub node_id: u64,
    pub raft_listen: SocketAddr,
    /// Every other voter's Raft address, dialed exactly as given.
    pub peers: BTreeMap<u64, String>,
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub sync_writes: bool,
    pub snapshots: crate::snapshot::policy::SnapshotSettings,
    /// Where the local metadata checkpoint and staged snapshots live.
    pub data_dir: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Refused(#[from] CatalogError),
    #[error("no metadata leader is reachable yet")]
    Unavailable,
    #[error("the change was not applied within the timeout")]
    TimedOut,
}

pub struct Cluster {
    pub node_id: u64,
    commands: flume::Sender<Command>,
    transport: Arc<Transport>,
    replicas: Arc<LocalReplicas>,
    /// Starts at a random point each time the node starts: committed entries proposed by an
    /// earlier run of this node are re-delivered after a restart, and their proposal ids
    /// must not match a proposal of this run (it would be answered with another entry's
    /// outcome).
    next_proposal: AtomicU64,
    loop_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Cluster {
    pub async fn start(
        settings: ClusterSettings,
        store: Arc<dyn RaftLogStore>,
        catalog: Arc<Catalog>,
        offsets: Arc<OffsetStore>,
        replicas: Arc<LocalReplicas>,
        opener: PartitionOpener,
        objects: crate::snapshot::objects::SnapshotObjects,
    ) -> anyhow::Result<Cluster> {
        let transport_limits = TransportLimits {
            queue_bytes: TRANSPORT_QUEUE_BYTES,
            ..TransportLimits::default()
        };
        let abstention_window = vote_abstention::abstention_window(
            settings.tick * settings.election_ticks as u32,
            transport_limits.queue_max_age,
        );
        let (transport, mut inbound) = Transport::start(
            settings.node_id,
            settings.raft_listen,
            settings.peers.clone(),
            transport_limits,
        )
        .await?;
        let transport = Arc::new(transport);
        let mut multi = MultiRaft::new(
            RaftSettings {
                election_tick: settings.election_ticks,
                heartbeat_tick: settings.heartbeat_ticks,
                ..RaftSettings::new(settings.node_id)
            },
            store,
        );
        multi.set_sync_writes(settings.sync_writes);
        let voters: Vec<u64> = catalog.nodes().iter().map(|id| *id as u64).collect();
        let (commands, queue) = flume::bounded(COMMAND_QUEUE);
        let snapshots = snapshots::SnapshotDriver::new(
            settings.snapshots.clone(),
            objects,
            tokio::runtime::Handle::current(),
            commands.clone(),
            settings.data_dir.clone(),
        );
        let raft_loop = raft_loop::RaftLoop {
            node_id: settings.node_id,
            multi,
            transport: transport.clone(),
            catalog,
            offsets,
            replicas: replicas.clone(),
            opener,
            tick: settings.tick,
            pending: HashMap::new(),
            ticks: 0,
            incarnation: uuid::Uuid::new_v4().as_u64_pair().0,
            peer_incarnations: HashMap::new(),
            snapshots,
            abstention: vote_abstention::VoteAbstention::default(),
            abstention_window,
            gauges: raft_gauges::RaftGauges::default(),
        };
        let (started, start_up) = oneshot::channel();
        let loop_thread = std::thread::Builder::new()
            .name("raft-loop".into())
            .spawn(move || raft_loop.run(queue, started))?;
        match start_up.await {
            Ok(Ok(())) => {}
            Ok(Err(start_error)) => {
                let _ = loop_thread.join();
                return Err(start_error);
            }
            Err(_) => anyhow::bail!("the raft loop ended during start-up"),
        }
        let forward = commands.clone();
        tokio::spawn(async move {
            while let Some(batch) = inbound.recv().await {
                if forward.send_async(Command::Inbound(batch)).await.is_err() {
                    return;
                }
            }
        });
        info!(node_id = settings.node_id, raft = %transport.local_addr(), voters = ?voters, "raft started");
        Ok(Cluster {
            node_id: settings.node_id,
            commands,
            transport,
            replicas,
            next_proposal: AtomicU64::new(uuid::Uuid::new_v4().as_u64_pair().0 >> 1),
            loop_thread: Mutex::new(Some(loop_thread)),
        })
    }

    async fn propose(
        &self,
        group: u64,
        kind: EntryKind,
        body: bytes::Bytes,
        wait: bool,
    ) -> Option<oneshot::Receiver<Applied>> {
        let proposal_id = self.next_proposal.fetch_add(1, Ordering::Relaxed);
        let (reply, applied) = if wait {
            let (sender, receiver) = oneshot::channel();
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        let command = Command::Propose {
            group,
            kind,
            body,
            proposal_id,
            reply,
        };
        self.commands.send_async(command).await.ok()?;
        applied
    }

    /// Queues `records` (validated batches) for the partition's group. Proposals queued by one
    /// caller reach the Raft log in the order they were queued.
    pub async fn submit_append(&self, group: u64, records: bytes::Bytes, wait: bool) -> Proposed {
        let queued = self
            .propose(group, EntryKind::PartitionAppend, records, wait)
            .await;
        Proposed { wait, queued }
    }

    /// Proposes a catalog change (forwarded to the metadata leader) and waits until this node
    /// has applied it.
    pub async fn change_metadata(
        &self,
        command: MetadataCommand,
        timeout: Duration,
    ) -> Result<(), MetadataError> {
        let body = serde_json::to_vec(&command)
            .expect("metadata commands serialize")
            .into();
        let applied = self
            .propose(METADATA_GROUP_ID, EntryKind::Metadata, body, true)
            .await
            .ok_or(MetadataError::Unavailable)?;
        match tokio::time::timeout(timeout, applied).await {
            Ok(Ok(Applied::Metadata(result))) => result.map_err(MetadataError::from),
            Ok(Ok(_)) | Ok(Err(_)) => Err(MetadataError::Unavailable),
            Err(_) => Err(MetadataError::TimedOut),
        }
    }

    pub fn view(&self, group: u64) -> replicas::GroupView {
        self.replicas.view(group)
    }

    /// The metadata group's leader (the controller and group coordinator), if known.
    pub fn metadata_leader(&self) -> Option<i32> {
        let view = self.replicas.view(METADATA_GROUP_ID);
        (view.leader != 0).then_some(view.leader as i32)
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Stops the Raft loop and the transport.
    pub async fn shutdown(&self) {
        let (done, stopped) = oneshot::channel();
        if self
            .commands
            .send_async(Command::Shutdown(done))
            .await
            .is_ok()
        {
            let _ = stopped.await;
        }
        let thread = self.loop_thread.lock().take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.transport.shutdown().await;
    }
}
