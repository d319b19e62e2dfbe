//! The multi-Raft driver of one node: every Raft group this node is a member of, stepped and
//! ticked together, with one durable write per round for all of them.
//!
//! It is sans-I/O apart from its [`RaftLogStore`]: messages to send and committed entries to
//! apply come back in an [`Output`]; the caller moves them (over TCP in the broker, through a
//! simulated network in the simulation). The ready handling follows raft-rs's documented order:
//! messages that need no persistence, committed entries, then entries and hard state written and
//! synced, then the messages that depended on them, then `advance`.

use std::collections::BTreeMap;
use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, Message, MessageType, Snapshot};
use raft::{ProgressState, RawNode, SnapshotStatus, StateRole};

use super::group_storage::GroupStorage;
use super::log_store::{RaftLogStore, StoreBatch, StoreResult};

#[derive(Clone, Debug)]
pub struct RaftSettings {
    pub node_id: u64,
    /// Ticks without a leader's heartbeat before a follower campaigns (randomised up to 2x).
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_tick: usize,
    /// Largest append message, in bytes.
    pub max_size_per_msg: u64,
    /// Append messages in flight per follower.
    pub max_inflight_msgs: usize,
}

impl RaftSettings {
    pub fn new(node_id: u64) -> RaftSettings {
        RaftSettings {
            node_id,
            election_tick: 10,
            heartbeat_tick: 2,
            max_size_per_msg: 1024 * 1024,
            // With 1 MiB appends this bounds what a leader holds in flight per follower.
            max_inflight_msgs: 32,
        }
    }
}

#[derive(Debug)]
pub struct Outbound {
    pub to: u64,
    pub group: u64,
    pub message: Message,
}

#[derive(Debug)]
pub struct Committed {
    pub group: u64,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleChange {
    pub group: u64,
    pub role: StateRole,
    pub leader: u64,
}

/// What one round produced for the caller to carry out, in order.
#[derive(Debug, Default)]
pub struct Output {
    pub messages: Vec<Outbound>,
    pub committed: Vec<Committed>,
    pub role_changes: Vec<RoleChange>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.committed.is_empty() && self.role_changes.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    pub role: StateRole,
    pub leader: u64,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    /// Entries at and below this index are compacted away (0: never compacted).
    pub truncated_index: u64,
    /// For a leader: each voter's matched index.
    pub matched: BTreeMap<u64, u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProposeError {
    #[error("this node does not hold group {0}")]
    UnknownGroup(u64),
    #[error("not the leader (leader is {leader}, 0 when unknown)")]
    NotLeader { leader: u64 },
    #[error("proposal dropped ({0})")]
    Dropped(String),
}

pub struct MultiRaft {
    settings: RaftSettings,
    store: Arc<dyn RaftLogStore>,
    /// Ordered, so that iteration (and with it the simulation) is deterministic.
    groups: BTreeMap<u64, RawNode<GroupStorage>>,
    /// Groups whose hard state changed outside a ready (commit advanced in a light ready).
    hard_state_dirty: Vec<u64>,
    /// Whether each round's write is synced (off only with `--fsync never`).
    sync_writes: bool,
    /// Per peer, the ticks since a message from it was last stepped.
    peer_silence_ticks: BTreeMap<u64, u64>,
    logger: slog::Logger,
}

/// A follower silent for this many election timeouts no longer holds back a leader's
/// compaction (see [`MultiRaft::needed_by_followers`]).
pub const FOLLOWER_SILENCE_LIMIT_ELECTIONS: u64 = 10;

impl MultiRaft {
    pub fn new(settings: RaftSettings, store: Arc<dyn RaftLogStore>) -> MultiRaft {
        MultiRaft {
            settings,
            store,
            groups: BTreeMap::new(),
            hard_state_dirty: Vec::new(),
            sync_writes: true,
            peer_silence_ticks: BTreeMap::new(),
            logger: super::logger::raft_logger(),
        }
    }

    pub fn set_sync_writes(&mut self, sync_writes: bool) {
        self.sync_writes = sync_writes;
    }

    pub fn node_id(&self) -> u64 {
        self.settings.node_id
    }

    pub fn has_group(&self, group: u64) -> bool {
        self.groups.contains_key(&group)
    }

    pub fn group_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.groups.keys().copied()
    }

    /// Starts (or restarts) this node's member of `group`. A group seen for the first time is
    /// bootstrapped with `voters` as its configuration; `applied` is the last index the caller
    /// has durably applied, so raft re-delivers everything committed after it.
    pub fn create_group(&mut self, group: u64, voters: &[u64], applied: u64) -> raft::Result<()> {
        if self.groups.contains_key(&group) {
            return Ok(());
        }
        let store_error = |error: super::log_store::StoreError| {
            raft::Error::Store(raft::StorageError::Other(error.to_string().into()))
        };
        let conf_state = self.store.conf_state(group).map_err(store_error)?;
        if conf_state.voters.is_empty() {
            let mut batch = StoreBatch::default();
            batch.group(group).conf_state = Some(ConfState::from((voters.to_vec(), vec![])));
            self.store.write(batch, true).map_err(store_error)?;
        }
        let commit = self.store.hard_state(group).map_err(store_error)?.commit;
        let config = raft::Config {
            id: self.settings.node_id,
            election_tick: self.settings.election_tick,
            heartbeat_tick: self.settings.heartbeat_tick,
            applied: applied.min(commit),
            max_size_per_msg: self.settings.max_size_per_msg,
            max_inflight_msgs: self.settings.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            ..raft::Config::default()
        };
        let storage = GroupStorage::new(self.store.clone(), group);
        let logger = self
            .logger
            .new(slog::o!("group" => group, "node" => self.settings.node_id));
        let node = RawNode::new(&config, storage, &logger)?;
        self.groups.insert(group, node);
        Ok(())
    }

    /// Before `group` is started: makes its durable state that of `snapshot` (restored from
    /// the object store onto an empty disk): the log starts after the snapshot's index, which
    /// is committed, in the snapshot's term, with no vote cast.
    pub fn restore_group(&mut self, group: u64, snapshot: Snapshot) -> StoreResult<()> {
        let metadata = snapshot.get_metadata();
        let hard_state = raft::eraftpb::HardState {
            term: metadata.term,
            commit: metadata.index,
            ..Default::default()
        };
        let mut batch = StoreBatch::default();
        let write = batch.group(group);
        write.install_snapshot = Some(snapshot);
        write.hard_state = Some(hard_state);
        self.store.write(batch, true)
    }

    /// Whether the durable state of `group` is empty (never started, or the disk was lost).
    pub fn is_pristine(&self, group: u64) -> StoreResult<bool> {
        Ok(self.store.hard_state(group)?.term == 0
            && self.store.last_index(group)? == 0
            && self.store.recorded_snapshot(group)?.is_none())
    }

    /// Where `group`'s stored log starts (entries at and below are compacted away).
    pub fn truncated_index(&self, group: u64) -> StoreResult<u64> {
        Ok(self.store.truncated_state(group)?.index)
    }

    /// Bytes the Raft log store occupies on disk.
    pub fn store_used_bytes(&self) -> u64 {
        self.store.used_bytes()
    }

    /// The term of entry `index` of `group`, when it is held (or is the compaction point).
    pub fn term_of(&self, group: u64, index: u64) -> Option<u64> {
        self.groups.get(&group)?.raft.raft_log.term(index).ok()
    }

    /// The voters of `group`'s current configuration.
    pub fn voters(&self, group: u64) -> Vec<u64> {
        self.groups.get(&group).map_or_else(Vec::new, |node| {
            let mut voters: Vec<u64> = node.raft.prs().conf().voters().ids().iter().collect();
            voters.sort_unstable();
            voters
        })
    }

    /// Stops this node's member of `group` and forgets its log.
    pub fn remove_group(&mut self, group: u64) -> StoreResult<()> {
        self.groups.remove(&group);
        self.store.remove_group(group)
    }

    pub fn tick(&mut self) {
        for node in self.groups.values_mut() {
            node.tick();
        }
        for silence in self.peer_silence_ticks.values_mut() {
            *silence += 1;
        }
    }

    /// Feeds a message from a peer; false when this node does not hold the group (yet).
    pub fn step(&mut self, group: u64, mut message: Message) -> bool {
        self.peer_silence_ticks.insert(message.from, 0);
        match self.groups.get_mut(&group) {
            Some(node) => {
                // A leader's heartbeat carries min(what it believes we have, its commit). After
                // our disk was wiped that belief is stale, and raft-rs would abort on a commit
                // beyond our log. Only an append (which checks the log matches) may then move
                // our commit, so such a heartbeat carries our own commit instead.
                if message.get_msg_type() == MessageType::MsgHeartbeat
                    && message.commit > node.raft.raft_log.last_index()
                {
                    message.commit = node.raft.raft_log.committed;
                }
                // Errors here are stale or foreign messages (e.g. from an old term); raft has
                // already ignored them.
                let _ = node.step(message);
                true
            }
            None => false,
        }
    }

    /// Proposes `data` in `group`. Only a leader accepts: a follower answers with who leads,
    /// and a leader handing its leadership over (which raft-rs drops proposals during) with
    /// the node it hands it to, so that clients go and look for the new leader as they do
    /// after any leader change, rather than retry an error that says nothing of where.
    pub fn propose(&mut self, group: u64, data: Vec<u8>) -> Result<(), ProposeError> {
        let node = self
            .groups
            .get_mut(&group)
            .ok_or(ProposeError::UnknownGroup(group))?;
        if node.raft.state != StateRole::Leader {
            return Err(ProposeError::NotLeader {
                leader: node.raft.leader_id,
            });
        }
        if let Some(transferee) = node.raft.lead_transferee {
            return Err(ProposeError::NotLeader { leader: transferee });
        }
        node.propose(Vec::new(), data)
            .map_err(|error| ProposeError::Dropped(error.to_string()))
    }

    /// Proposes `data` from any member: a follower forwards it to the leader it knows. The
    /// caller learns of success only by seeing the entry applied.
    pub fn propose_forwarded(&mut self, group: u64, data: Vec<u8>) -> Result<(), ProposeError> {
        let node = self
            .groups
            .get_mut(&group)
            .ok_or(ProposeError::UnknownGroup(group))?;
        node.propose(Vec::new(), data)
            .map_err(|error| ProposeError::Dropped(error.to_string()))
    }

    /// Starts an election now (a one-member group need not wait for its timeout).
    pub fn campaign(&mut self, group: u64) {
        if let Some(node) = self.groups.get_mut(&group) {
            let _ = node.campaign();
        }
    }

    pub fn transfer_leader(&mut self, group: u64, to: u64) {
        if let Some(node) = self.groups.get_mut(&group) {
            node.transfer_leader(to);
        }
    }

    /// Forgets what this leader believed `peer` holds in `group` and probes it from the end of
    /// the log, as after a restart that may have lost its disk: the leader then finds how far
    /// the peer's log really goes and sends it from there. Nothing on a follower.
    pub fn forget_progress(&mut self, group: u64, peer: u64) {
        let Some(node) = self.groups.get_mut(&group) else {
            return;
        };
        if node.raft.state != StateRole::Leader {
            return;
        }
        let next_index = node.raft.raft_log.last_index() + 1;
        if let Some(progress) = node.raft.mut_prs().get_mut(peer) {
            progress.matched = 0;
            progress.become_probe();
            progress.next_idx = next_index;
        }
    }

    /// Called once a snapshot message to `peer` went out. The leader then probes the peer
    /// again: a follower that installed the snapshot answers the next append, one that is
    /// still fetching it rejects it and is sent the snapshot again.
    pub fn report_snapshot_sent(&mut self, group: u64, peer: u64) {
        if let Some(node) = self.groups.get_mut(&group) {
            node.report_snapshot(peer, SnapshotStatus::Finish);
        }
    }

    /// Records the newest snapshot of `group` in the object store, which this node sends to a
    /// follower that needs compacted entries.
    pub fn record_snapshot(&mut self, group: u64, snapshot: Snapshot) -> StoreResult<()> {
        let mut batch = StoreBatch::default();
        batch.group(group).record_snapshot = Some(snapshot);
        self.store.write(batch, false)
    }

    /// The snapshot recorded for `group`, if any.
    pub fn recorded_snapshot(&self, group: u64) -> StoreResult<Option<Snapshot>> {
        self.store.recorded_snapshot(group)
    }

    /// Drops `group`'s entries up to `index`, which must be applied and covered by the
    /// recorded snapshot (the caller checks both).
    pub fn compact(&mut self, group: u64, index: u64) -> StoreResult<()> {
        let Some(node) = self.groups.get(&group) else {
            return Ok(());
        };
        let index = index.min(node.raft.raft_log.applied);
        if index < node.raft.raft_log.first_index() {
            return Ok(());
        }
        let mut batch = StoreBatch::default();
        batch.group(group).compact_to = Some(index);
        self.store.write(batch, false)
    }

    /// On a leader: the lowest index that a live follower still needs the log after, among
    /// followers at most `max_lag_entries` behind: a follower being sent a snapshot needs the
    /// entries after that snapshot, others those after what they hold. Compacting below it
    /// lets a follower that is catching up finish from the log instead of being sent one
    /// snapshot after another. `None` when no follower qualifies, or not the leader.
    ///
    /// A follower whose holdings this leader forgot when it restarted (`forget_progress`;
    /// matched 0 until it answers) needs what the log holds now: a wiped node restores the
    /// newest snapshot in the object store in the background and then continues from the
    /// log, which a snapshot recorded meanwhile would otherwise have compacted away, sending
    /// it a second snapshot. The lag bound ends that hold like any other.
    ///
    /// Live means heard from within [`FOLLOWER_SILENCE_LIMIT_ELECTIONS`] election timeouts,
    /// not raft-rs's `recent_active` (one election timeout): a follower under load, or
    /// swapping a large snapshot in on its Raft loop, can be quiet for longer than that, and
    /// with the log compacted under it meanwhile it was sent snapshot after snapshot.
    pub fn needed_by_followers(&self, group: u64, max_lag_entries: u64) -> Option<u64> {
        let node = self.groups.get(&group)?;
        let raft = &node.raft;
        if raft.state != StateRole::Leader {
            return None;
        }
        let silence_limit_ticks =
            self.settings.election_tick as u64 * FOLLOWER_SILENCE_LIMIT_ELECTIONS;
        let is_live = |peer: &u64| {
            self.peer_silence_ticks
                .get(peer)
                .is_some_and(|silence| *silence <= silence_limit_ticks)
        };
        let last = raft.raft_log.last_index();
        let truncated = raft.raft_log.first_index().saturating_sub(1);
        raft.prs()
            .iter()
            .filter(|(id, _)| **id != raft.id && is_live(id))
            .map(|(_, progress)| match progress.state {
                ProgressState::Snapshot => progress.pending_snapshot,
                ProgressState::Probe if progress.matched == 0 => truncated,
                ProgressState::Probe | ProgressState::Replicate => progress.matched,
            })
            .filter(|needed| last.saturating_sub(*needed) <= max_lag_entries)
            .min()
    }

    pub fn report_unreachable(&mut self, group: u64, peer: u64) {
        if let Some(node) = self.groups.get_mut(&group) {
            node.report_unreachable(peer);
        }
    }

    pub fn status(&self, group: u64) -> Option<GroupStatus> {
        let node = self.groups.get(&group)?;
        let raft = &node.raft;
        let matched = if raft.state == StateRole::Leader {
            raft.prs()
                .iter()
                .map(|(id, progress)| (*id, progress.matched))
                .collect()
        } else {
            BTreeMap::new()
        };
        Some(GroupStatus {
            role: raft.state,
            leader: raft.leader_id,
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: raft.raft_log.applied,
            last_index: raft.raft_log.last_index(),
            truncated_index: raft.raft_log.first_index() - 1,
            matched,
        })
    }

    /// Handles every group's ready state: one durable write for all of them, then the messages
    /// and committed entries into `output`. A snapshot the leader sent is handed to
    /// `install_snapshot` (which makes the state machine match it, durably) before the log is
    /// replaced by it, so a crash in between never leaves a log that starts after the state.
    pub fn handle_ready(
        &mut self,
        output: &mut Output,
        install_snapshot: &mut dyn FnMut(u64, &Snapshot) -> Result<(), String>,
    ) -> StoreResult<()> {
        let mut batch = StoreBatch::default();
        for group in self.hard_state_dirty.drain(..) {
            if let Some(node) = self.groups.get(&group) {
                batch.group(group).hard_state = Some(node.raft.hard_state());
            }
        }
        let mut readies = Vec::new();
        // Only new entries, a snapshot, or a new term or vote must be synced before the round's
        // messages go out; a commit index alone may be written lazily (raft-rs's `must_sync`).
        let mut must_sync = false;
        for (group, node) in self.groups.iter_mut() {
            if !node.has_ready() {
                continue;
            }
            let mut ready = node.ready();
            if let Some(soft_state) = ready.ss() {
                output.role_changes.push(RoleChange {
                    group: *group,
                    role: soft_state.raft_state,
                    leader: soft_state.leader_id,
                });
            }
            push_messages(&mut output.messages, *group, ready.take_messages());
            push_committed(
                &mut output.committed,
                *group,
                ready.take_committed_entries(),
            );
            must_sync |= ready.must_sync();
            let write = batch.group(*group);
            if !ready.snapshot().is_empty() {
                install_snapshot(*group, ready.snapshot()).map_err(|message| {
                    super::log_store::StoreError::Engine(format!(
                        "installing a snapshot of group {group}: {message}"
                    ))
                })?;
                write.install_snapshot = Some(ready.snapshot().clone());
                must_sync = true;
            }
            write.entries = ready.take_entries();
            write.hard_state = ready.hs().cloned();
            readies.push((*group, ready));
        }
        batch.groups.retain(|_, write| !write.is_empty());
        if !batch.is_empty() {
            self.store.write(batch, self.sync_writes && must_sync)?;
        }
        for (group, mut ready) in readies {
            let node = self
                .groups
                .get_mut(&group)
                .expect("group held during this round");
            push_messages(&mut output.messages, group, ready.take_persisted_messages());
            let mut light = node.advance(ready);
            if light.commit_index().is_some() {
                self.hard_state_dirty.push(group);
            }
            push_messages(&mut output.messages, group, light.take_messages());
            push_committed(&mut output.committed, group, light.take_committed_entries());
            node.advance_apply();
        }
        Ok(())
    }
}

fn push_messages(messages: &mut Vec<Outbound>, group: u64, new: Vec<Message>) {
    messages.extend(new.into_iter().map(|message| Outbound {
        to: message.to,
        group,
        message,
    }));
}

fn push_committed(committed: &mut Vec<Committed>, group: u64, entries: Vec<Entry>) {
    if !entries.is_empty() {
        committed.push(Committed { group, entries });
    }
}
