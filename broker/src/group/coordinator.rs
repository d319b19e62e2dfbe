//! [`GroupCoordinator`]: the async face of the group state machines and the offset store.

mod handover;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::events::{GroupEvent, OffsetEntry};
use super::offsets::{OffsetStore, DEFAULT_COMPACT_MIN_BYTES};
use super::state::{Group, GroupState};
use super::types::{
    CommitOffset, Effect, FetchedOffset, GroupDescription, GroupListing, JoinRequest, JoinResult,
    MemberDescription, Reply, SyncRequest, SyncResult,
};
use super::{codes, monotonic_ms, wall_clock_ms, GroupSettings};

/// How often the expiry task runs the timers of every group.
const TICK: Duration = Duration::from_millis(100);
/// An Empty group without members or offsets is forgotten after this long.
const IDLE_GROUP_RETENTION_MS: u64 = 10 * 60 * 1000;
/// Slack added to a parked call's bound, past the deadline that should answer it.
const WAIT_SLACK_MS: u64 = 5_000;
/// Largest metadata string accepted with a committed offset (Kafka's offset.metadata.max.bytes).
pub const MAX_OFFSET_METADATA: usize = 4096;

/// How a JoinGroup/SyncGroup call started: answered at once, or parked on a waiter.
enum Started<T, W> {
    Answered(T),
    Parked(W),
}

/// A group plus the parked JoinGroup/SyncGroup calls of its members.
struct GroupEntry {
    group: Group,
    join_waiters: HashMap<String, oneshot::Sender<JoinResult>>,
    sync_waiters: HashMap<String, oneshot::Sender<SyncResult>>,
    /// The generation the replicated state holds for this group (None: nothing stored).
    replicated_generation: Option<i32>,
}

impl GroupEntry {
    fn new(group: Group) -> GroupEntry {
        GroupEntry {
            group,
            join_waiters: HashMap::new(),
            sync_waiters: HashMap::new(),
            replicated_generation: None,
        }
    }

    fn deliver(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Join { member_id, result } => {
                    if let Some(tx) = self.join_waiters.remove(&member_id) {
                        let _ = tx.send(result);
                    }
                }
                Effect::Sync { member_id, result } => {
                    if let Some(tx) = self.sync_waiters.remove(&member_id) {
                        let _ = tx.send(result);
                    }
                }
            }
        }
    }
}

/// The consumer group coordinator of this node.
pub struct GroupCoordinator {
    settings: GroupSettings,
    groups: Mutex<HashMap<String, GroupEntry>>,
    store: Arc<OffsetStore>,
    /// Set in a cluster: offsets and Stable generations are written through it instead of
    /// the local journal.
    replicator: std::sync::OnceLock<Arc<dyn super::GroupReplicator>>,
    /// The metadata term whose replicated state the in-memory groups were loaded from (0:
    /// none; only with a replicator).
    loaded_term: AtomicU64,
    /// This coordinator, for the tasks that write group state.
    me: Weak<GroupCoordinator>,
    expiry_running: AtomicBool,
    stopped: AtomicBool,
}

/// Resets the "expiry task running" flag when the task ends, however it ends.
struct ExpiryGuard(Weak<GroupCoordinator>);

impl Drop for ExpiryGuard {
    fn drop(&mut self) {
        if let Some(coordinator) = self.0.upgrade() {
            coordinator.expiry_running.store(false, Ordering::Release);
        }
    }
}

/// `client_id-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as Kafka forms member ids.
fn new_member_id(client_id: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let mut words = [0u64; 2];
    for (i, word) in words.iter_mut().enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u64(wall_clock_ms() as u64);
        hasher.write_usize(i);
        *word = hasher.finish();
    }
    let hex = format!("{:016x}{:016x}", words[0], words[1]);
    let prefix = if client_id.is_empty() {
        "consumer"
    } else {
        client_id
    };
    format!(
        "{prefix}-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl GroupCoordinator {
    /// Opens the coordinator with its offset journal in `dir/groups/` (or in `dir` itself when
    /// its last component already is `groups`). Inside a tokio runtime the expiry task is
    /// started too; [`GroupCoordinator::spawn_expiry`] starts it otherwise (a second call is a
    /// no-op).
    pub fn open(dir: &Path, settings: GroupSettings) -> anyhow::Result<Arc<GroupCoordinator>> {
        Self::open_with(dir, settings, DEFAULT_COMPACT_MIN_BYTES)
    }

    /// As [`GroupCoordinator::open`], with the journal size below which it is never compacted.
    pub fn open_with(
        dir: &Path,
        settings: GroupSettings,
        compact_min_bytes: u64,
    ) -> anyhow::Result<Arc<GroupCoordinator>> {
        let dir = if dir.file_name().is_some_and(|name| name == "groups") {
            dir.to_path_buf()
        } else {
            dir.join("groups")
        };
        let store = OffsetStore::open_with(&dir, compact_min_bytes)
            .with_context(|| format!("opening the group offset journal in {}", dir.display()))?;
        let now = monotonic_ms();
        let groups = store
            .group_ids()
            .into_iter()
            .map(|id| {
                let entry = GroupEntry::new(Group::new(&id, now));
                (id, entry)
            })
            .collect();
        let coordinator = Arc::new_cyclic(|me| GroupCoordinator {
            settings,
            groups: Mutex::new(groups),
            store: Arc::new(store),
            replicator: std::sync::OnceLock::new(),
            loaded_term: AtomicU64::new(0),
            me: me.clone(),
            expiry_running: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(coordinator.spawn_expiry());
        }
        Ok(coordinator)
    }

    /// Commits offsets and writes Stable generations through `replicator` from now on (set
    /// once, at start-up). From then on this node serves groups only while
    /// [`super::GroupReplicator::coordinator_term`] says it coordinates, with the groups loaded
    /// from the replicated state of that term.
    pub fn set_replicator(&self, replicator: Arc<dyn super::GroupReplicator>) {
        let _ = self.replicator.set(replicator);
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// The offset store (reads, compaction).
    pub fn store(&self) -> &Arc<OffsetStore> {
        &self.store
    }

    /// Starts the task that expires sessions and ends join phases on time, every 100 ms. It
    /// stops at [`GroupCoordinator::shutdown`] or when the coordinator is dropped. Only one
    /// such task runs: the handle of a redundant one finishes at once.
    pub fn spawn_expiry(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            match weak.upgrade() {
                Some(me) if !me.expiry_running.swap(true, Ordering::AcqRel) => {}
                _ => return,
            }
            let _guard = ExpiryGuard(weak.clone());
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(me) = weak.upgrade() else { return };
                if me.stopped.load(Ordering::Acquire) {
                    return;
                }
                me.tick();
            }
        })
    }

    /// One pass of the timers of every group (the expiry task calls this).
    pub fn tick(&self) {
        let now = monotonic_ms();
        let delay = self.settings.initial_rebalance_delay_ms;
        let mut groups = self.groups.lock();
        let taken_over = self.take_over(&mut groups, now);
        let term = self.loaded_term.load(Ordering::Acquire);
        if taken_over.is_err() {
            // Not the coordinator: no timers run, nothing is written, no group is held.
            drop(groups);
            for state in GroupState::ALL {
                ::metrics::gauge!("chronik_groups", "state" => state.name()).set(0.0);
            }
            ::metrics::gauge!("chronik_group_members").set(0.0);
            return;
        }
        let mut per_state = [0usize; GroupState::ALL.len()];
        let mut members = 0usize;
        let mut idle = Vec::new();
        let mut writes = Vec::new();
        for (id, entry) in groups.iter_mut() {
            let mut fx = Vec::new();
            entry.group.poll_timers(delay, now, &mut fx);
            entry.deliver(fx);
            writes.extend(entry.emptied(term));
            let group = &entry.group;
            per_state[GroupState::ALL
                .iter()
                .position(|s| *s == group.state)
                .unwrap_or(0)] += 1;
            members += group.members.len();
            if group.state == GroupState::Empty
                && group.members.is_empty()
                && group.pending_members.is_empty()
                && group
                    .empty_since_ms
                    .is_some_and(|since| since + IDLE_GROUP_RETENTION_MS <= now)
            {
                idle.push(id.clone());
            }
        }
        for id in idle {
            if !self.store.has_group(&id) {
                groups.remove(&id);
            }
        }
        drop(groups);
        self.spawn_writes(writes);
        for (state, count) in GroupState::ALL.iter().zip(per_state) {
            ::metrics::gauge!("chronik_groups", "state" => state.name()).set(count as f64);
        }
        ::metrics::gauge!("chronik_group_members").set(members as f64);
    }

    /// Stops the expiry task and syncs the journal (acknowledged commits already are synced;
    /// this only makes sure nothing appended is left behind).
    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "syncing the group journal at shutdown failed");
        }
    }

    /// Runs `f` on a group after its due timers, delivering the effects. `create`: make the
    /// group if it does not exist (else `f` is not called and `Ok(None)` comes back). A group
    /// this node has no live copy of but the replicated state has is materialized from it.
    /// `Err(code)`: this node does not coordinate groups now.
    fn with_group<R>(
        &self,
        group_id: &str,
        create: bool,
        f: impl FnOnce(&mut GroupEntry, u64, &mut Vec<Effect>) -> R,
    ) -> Result<Option<R>, i16> {
        let now = monotonic_ms();
        let delay = self.settings.initial_rebalance_delay_ms;
        let mut groups = self.groups.lock();
        self.take_over(&mut groups, now)?;
        if !groups.contains_key(group_id) {
            if let Some(entry) = self.materialize(group_id, now) {
                groups.insert(group_id.to_string(), entry);
            }
        }
        let entry = if create {
            groups
                .entry(group_id.to_string())
                .or_insert_with(|| GroupEntry::new(self.new_group(group_id, now)))
        } else {
            match groups.get_mut(group_id) {
                Some(entry) => entry,
                None => return Ok(None),
            }
        };
        let mut fx = Vec::new();
        entry.group.poll_timers(delay, now, &mut fx);
        let result = f(entry, now, &mut fx);
        entry.deliver(fx);
        let term = self.loaded_term.load(Ordering::Acquire);
        let writes: Vec<GroupEvent> = entry.emptied(term).into_iter().collect();
        drop(groups);
        self.spawn_writes(writes);
        Ok(Some(result))
    }

    /// JoinGroup; parks until the join phase completes (bounded by the rebalance timeout).
    pub async fn join(&self, req: JoinRequest) -> JoinResult {
        if req.group_id.is_empty() {
            return JoinResult::error(&req.member_id, codes::INVALID_GROUP_ID);
        }
        if req.session_timeout_ms < self.settings.min_session_timeout_ms
            || req.session_timeout_ms > self.settings.max_session_timeout_ms
        {
            return JoinResult::error(&req.member_id, codes::INVALID_SESSION_TIMEOUT);
        }
        let delay = self.settings.initial_rebalance_delay_ms;
        let parked = self.with_group(&req.group_id, req.member_id.is_empty(), |entry, now, fx| {
            let generated = new_member_id(&req.client_id);
            let member_id = if req.member_id.is_empty() {
                generated.clone()
            } else {
                req.member_id.clone()
            };
            match entry.group.join(&req, generated, delay, now, fx) {
                Reply::Now(result) => Started::Answered(result),
                Reply::Parked => {
                    let (tx, rx) = oneshot::channel();
                    entry.join_waiters.insert(member_id.clone(), tx);
                    let bound = entry.group.rebalance_timeout_ms() + delay + WAIT_SLACK_MS;
                    Started::Parked((member_id, rx, bound))
                }
            }
        });
        let (member_id, rx, bound) = match parked {
            Err(code) => return JoinResult::error(&req.member_id, code),
            Ok(None) => return JoinResult::error(&req.member_id, codes::UNKNOWN_MEMBER_ID),
            Ok(Some(Started::Answered(result))) => return result,
            Ok(Some(Started::Parked(parked))) => parked,
        };
        match tokio::time::timeout(Duration::from_millis(bound), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => JoinResult::error(&member_id, codes::REBALANCE_IN_PROGRESS),
            Err(_) => {
                tracing::warn!(group = %req.group_id, member = %member_id, "JoinGroup wait timed out");
                JoinResult::error(&member_id, codes::REBALANCE_IN_PROGRESS)
            }
        }
    }

    /// SyncGroup; a follower parks until the leader's assignment arrives.
    pub async fn sync(&self, req: SyncRequest) -> SyncResult {
        if req.group_id.is_empty() {
            return SyncResult::error(codes::INVALID_GROUP_ID);
        }
        let parked = self.with_group(&req.group_id, false, |entry, now, fx| {
            let writing = entry.group.assignment_write;
            let started = match entry.group.sync(&req, now, fx) {
                Reply::Now(result) => Started::Answered(result),
                Reply::Parked => {
                    let (tx, rx) = oneshot::channel();
                    entry.sync_waiters.insert(req.member_id.clone(), tx);
                    Started::Parked((rx, entry.group.rebalance_timeout_ms() + WAIT_SLACK_MS))
                }
            };
            // The leader's assignment completed a generation: write it before answering.
            let write = match entry.group.assignment_write {
                Some(generation) if writing != Some(generation) => {
                    let term = self.loaded_term.load(Ordering::Acquire);
                    Some((generation, term, entry.group.to_stored()))
                }
                _ => None,
            };
            (started, write)
        });
        let (rx, bound) = match parked {
            Err(code) => return SyncResult::error(code),
            Ok(None) => return SyncResult::error(codes::UNKNOWN_MEMBER_ID),
            Ok(Some((started, write))) => {
                if let Some((generation, term, stored)) = write {
                    self.spawn_assignment_write(&req.group_id, generation, term, stored);
                }
                match started {
                    Started::Answered(result) => return result,
                    Started::Parked(parked) => parked,
                }
            }
        };
        match tokio::time::timeout(Duration::from_millis(bound), rx).await {
            Ok(Ok(result)) => result,
            _ => SyncResult::error(codes::REBALANCE_IN_PROGRESS),
        }
    }

    /// Heartbeat: an error code.
    pub fn heartbeat(&self, group_id: &str, member_id: &str, generation_id: i32) -> i16 {
        if group_id.is_empty() {
            return codes::INVALID_GROUP_ID;
        }
        match self.with_group(group_id, false, |entry, now, _| {
            entry.group.heartbeat(member_id, generation_id, now)
        }) {
            Ok(answer) => answer.unwrap_or(codes::UNKNOWN_MEMBER_ID),
            Err(code) => code,
        }
    }

    /// LeaveGroup of (member id, group instance id) pairs: one error code per member.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let delay = self.settings.initial_rebalance_delay_ms;
        let answers = self.with_group(group_id, false, |entry, now, fx| {
            members
                .iter()
                .map(|(member_id, instance)| {
                    entry
                        .group
                        .leave(member_id, instance.as_deref(), delay, now, fx)
                })
                .collect()
        });
        match answers {
            Ok(Some(answers)) => answers,
            Ok(None) => vec![codes::UNKNOWN_MEMBER_ID; members.len()],
            Err(code) => vec![code; members.len()],
        }
    }

    /// OffsetCommit of partitions already checked against the catalog: a group-level error
    /// code. On NONE the offsets are durable.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
        offsets: Vec<CommitOffset>,
    ) -> i16 {
        // A commit without generation to an unknown group creates it (no group management).
        let create = generation_id < 0;
        let verdict = self.with_group(group_id, create, |entry, now, _| {
            entry.group.validate_commit(member_id, generation_id, now)
        });
        match verdict {
            Err(code) => return code,
            Ok(None) => return codes::ILLEGAL_GENERATION,
            Ok(Some(codes::NONE)) => {}
            Ok(Some(error)) => return error,
        }
        if offsets.is_empty() {
            return codes::NONE;
        }
        let commit_timestamp_ms = wall_clock_ms();
        let event = GroupEvent::OffsetsCommitted {
            group: group_id.to_string(),
            offsets: offsets
                .into_iter()
                .map(|o| OffsetEntry {
                    topic: o.topic,
                    partition: o.partition,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.unwrap_or_default(),
                    commit_timestamp_ms,
                })
                .collect(),
        };
        let outcome = match self.replicator.get() {
            Some(replicator) => replicator.replicate(event).await,
            None => self
                .store
                .append(event)
                .await
                .map_err(|error| error.to_string()),
        };
        match outcome {
            Ok(()) => codes::NONE,
            Err(e) => {
                tracing::error!(group = %group_id, error = %e, "offset commit not durable");
                codes::NOT_COORDINATOR
            }
        }
    }

    /// OffsetFetch: the requested partitions (None: every partition the group committed),
    /// by topic, with -1 where nothing is committed.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, Vec<FetchedOffset>)> {
        self.store.read(|state| match topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let fetched = partitions
                        .iter()
                        .map(|&partition| match state.get(group_id, topic, partition) {
                            Some(v) => FetchedOffset {
                                partition,
                                offset: v.offset,
                                leader_epoch: v.leader_epoch,
                                metadata: v.metadata.clone(),
                            },
                            None => FetchedOffset {
                                partition,
                                offset: -1,
                                leader_epoch: -1,
                                metadata: String::new(),
                            },
                        })
                        .collect();
                    (topic.clone(), fetched)
                })
                .collect(),
            None => state
                .group(group_id)
                .map(|topics| {
                    topics
                        .iter()
                        .map(|(topic, partitions)| {
                            let fetched = partitions
                                .iter()
                                .map(|(&partition, v)| FetchedOffset {
                                    partition,
                                    offset: v.offset,
                                    leader_epoch: v.leader_epoch,
                                    metadata: v.metadata.clone(),
                                })
                                .collect();
                            (topic.clone(), fetched)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// DescribeGroups of one group (None: no such group, or this node does not coordinate).
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        self.with_group(group_id, false, |entry, _, _| {
            let group = &entry.group;
            let stable = group.state == GroupState::Stable;
            let protocol = group.protocol.clone().unwrap_or_default();
            GroupDescription {
                group_id: group.id.clone(),
                state: group.state,
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                protocol: if stable {
                    protocol.clone()
                } else {
                    String::new()
                },
                generation: group.generation,
                leader: group.leader.clone(),
                members: group
                    .members
                    .iter()
                    .map(|m| MemberDescription {
                        member_id: m.id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: if stable {
                            m.metadata_for(&protocol).cloned().unwrap_or_default()
                        } else {
                            Bytes::new()
                        },
                        assignment: if stable {
                            m.assignment.clone()
                        } else {
                            Bytes::new()
                        },
                    })
                    .collect(),
            }
        })
        .ok()
        .flatten()
    }

    /// ListGroups: every live group, by id.
    pub fn list(&self) -> Vec<GroupListing> {
        let mut groups = self.groups.lock();
        if self.take_over(&mut groups, monotonic_ms()).is_err() {
            return Vec::new();
        }
        let mut listed: Vec<GroupListing> = groups
            .values()
            .filter(|entry| entry.group.state != GroupState::Dead)
            .map(|entry| GroupListing {
                group_id: entry.group.id.clone(),
                protocol_type: entry.group.protocol_type.clone().unwrap_or_default(),
                state: entry.group.state,
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed
    }
}
