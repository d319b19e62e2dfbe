//! The Raft loop: one thread per node that owns the [`MultiRaft`] (and so every `RawNode`).
//! Each turn it takes commands (proposals, messages from peers), ticks on time, runs a ready
//! round (one durable write for all groups), sends the messages that round produced, and
//! applies committed entries: partition entries to their replica's log, metadata entries to
//! the catalog, opening or dropping local replicas as the catalog says.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{EntryType, Message, MessageType};
use raft::StateRole;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::entry::{self, EntryHeader, EntryKind};
use super::replicas::{GroupView, LocalReplicas};
use super::{Applied, Command, PartitionOpener};
use crate::catalog::{Catalog, CatalogChange, MetadataCommand, TopicSpec, METADATA_GROUP_ID};
use crate::group::offsets::OffsetStore;
use crate::partition::AppendError;
use crate::raft::multi_raft::{MultiRaft, Output, ProposeError};
use crate::transport::{Envelope, InboundBatch, Transport};

use super::leadership;
use super::raft_gauges::RaftGauges;
use super::snapshots::{Installer, SnapshotDriver, SNAPSHOT_CHECK_EVERY_TICKS};
use super::vote_abstention::{self, VoteAbstention};

/// Commands taken per turn before a ready round runs.
pub const MAX_COMMANDS_PER_TURN: usize = 1024;
/// A follower more than this many entries behind the leader is out of the in-sync set.
pub const IN_SYNC_LAG_ENTRIES: u64 = 1000;
/// Ticks between leadership rebalancing checks.
pub const REBALANCE_EVERY_TICKS: u64 = 40;
/// Ticks between publications of the per-group Raft gauges (250 ms with the default
/// heartbeat, the bench's polling interval): the bench times a node's recovery by them, so
/// their age is its error. A publication only sets registered handles.
pub const METRICS_EVERY_TICKS: u64 = 5;

pub(super) struct RaftLoop {
    pub node_id: u64,
    pub multi: MultiRaft,
    pub transport: Arc<Transport>,
    pub catalog: Arc<Catalog>,
    pub offsets: Arc<OffsetStore>,
    pub replicas: Arc<LocalReplicas>,
    pub opener: PartitionOpener,
    pub tick: Duration,
    pub pending: HashMap<u64, (u64, oneshot::Sender<Applied>)>,
    pub ticks: u64,
    /// Drawn at start; peers notice a restart by its change (see `leadership`).
    pub incarnation: u64,
    /// The last incarnation each peer announced.
    pub peer_incarnations: HashMap<u64, u64>,
    pub snapshots: SnapshotDriver,
    /// Holds a wiped node out of elections for a while (see `vote_abstention`).
    pub abstention: VoteAbstention,
    pub abstention_window: Duration,
    pub gauges: RaftGauges,
}

impl RaftLoop {
    pub fn run(
        mut self,
        commands: flume::Receiver<Command>,
        started: oneshot::Sender<anyhow::Result<()>>,
    ) {
        let start_up = self.start_up();
        let failed = start_up.is_err();
        let _ = started.send(start_up);
        if failed {
            return;
        }
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match commands.recv_timeout(wait) {
                Ok(command) => {
                    if !self.handle(command) {
                        return;
                    }
                }
                Err(flume::RecvTimeoutError::Timeout) => {}
                Err(flume::RecvTimeoutError::Disconnected) => return,
            }
            for command in commands.try_iter().take(MAX_COMMANDS_PER_TURN) {
                if !self.handle(command) {
                    return;
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                // A node abstaining from elections does not tick: it cannot lead, and a
                // follower's tick only counts towards campaigning.
                if !self.abstention.is_active(now) {
                    self.multi.tick();
                }
                self.ticks += 1;
                next_tick = (next_tick + self.tick).max(now);
                self.refresh_leader_views();
                if self.ticks % METRICS_EVERY_TICKS == 0 {
                    self.gauges
                        .publish(self.node_id, &self.multi, &self.replicas);
                }
                if self.ticks % leadership::CLAIM_EVERY_TICKS == 0 {
                    self.claim_leadership();
                }
                if self.ticks % SNAPSHOT_CHECK_EVERY_TICKS == 0 {
                    self.snapshot_turn();
                }
            }
            if let Err(store_error) = self.ready_round() {
                // Without a durable Raft log nothing may be acknowledged: stop the node's
                // replication rather than continue on an unknown state.
                error!(%store_error, "raft log write failed; replication stops");
                return;
            }
        }
    }

    /// Restores the metadata state (local checkpoint, or the object store on an empty disk),
    /// starts the metadata group, and opens the replicas the restored catalog assigns here;
    /// replaying the metadata log opens the rest.
    fn start_up(&mut self) -> anyhow::Result<()> {
        let pristine = self.multi.is_pristine(METADATA_GROUP_ID)?;
        let applied = self.restore_metadata()?;
        let voters: Vec<u64> = self.catalog.nodes().iter().map(|id| *id as u64).collect();
        let objects = self.snapshots.objects.clone();
        let was_member = self
            .snapshots
            .runtime
            .block_on(vote_abstention::was_member_before(
                &objects,
                self.node_id,
                pristine,
            ));
        if pristine && was_member && voters.len() > 1 {
            info!(
                window_ms = self.abstention_window.as_millis() as u64,
                "this node starts empty but was a member: it forgot its votes, so it abstains \
                 from elections for a while"
            );
            self.abstention = VoteAbstention::starting(Instant::now(), self.abstention_window);
        }
        self.multi
            .create_group(METADATA_GROUP_ID, &voters, applied)?;
        if voters == [self.node_id] {
            self.multi.campaign(METADATA_GROUP_ID);
        }
        if applied > 0 {
            self.reconcile_replicas();
        }
        Ok(())
    }

    /// Returns false when the loop must stop.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Propose {
                group,
                kind,
                body,
                proposal_id,
                reply,
            } => {
                let header = EntryHeader {
                    kind,
                    origin_node: self.node_id,
                    proposal_id,
                };
                let data = entry::encode(header, &body);
                let proposed = match kind {
                    EntryKind::Metadata => self.multi.propose_forwarded(group, data),
                    EntryKind::PartitionAppend | EntryKind::SnapshotTaken => {
                        self.multi.propose(group, data)
                    }
                };
                match (proposed, reply) {
                    (Ok(()), Some(reply)) => {
                        self.pending.insert(proposal_id, (group, reply));
                    }
                    (Ok(()), None) => {}
                    (Err(error), Some(reply)) => {
                        let _ = reply.send(Applied::NotProposed(error));
                    }
                    (Err(_), None) => {}
                }
            }
            Command::Inbound(batch) => self.step_inbound(batch),
            Command::Snapshot(event) => self.on_snapshot_event(event),
            Command::Shutdown(done) => {
                let _ = done.send(());
                return false;
            }
        }
        true
    }

    fn step_inbound(&mut self, batch: InboundBatch) {
        for envelope in batch.envelopes {
            if envelope.group_id == leadership::LEADERSHIP_GROUP_ID {
                self.take_leadership_claims(batch.from, &envelope.payload);
                continue;
            }
            // Entry data slices the received frame rather than copying it (a frame holds
            // little besides the entries it carries).
            match Message::parse_from_carllerche_bytes(&envelope.payload) {
                // Election messages while this node abstains: dropped; the candidate or the
                // transferring leader tries again later.
                Ok(message)
                    if !self
                        .abstention
                        .admits(message.get_msg_type(), Instant::now()) => {}
                // A group this node does not hold yet (its topic's metadata is not applied
                // here yet): dropped; raft retransmits.
                Ok(message) if message.get_msg_type() == MessageType::MsgSnapshot => {
                    self.on_snapshot_message(envelope.group_id, message);
                }
                Ok(message) => {
                    self.multi.step(envelope.group_id, message);
                }
                Err(decode_error) => {
                    warn!(from = batch.from, %decode_error, "undecodable raft message dropped");
                }
            }
        }
    }

    /// Tells every peer which groups this node leads, with their in-sync replicas (see
    /// `leadership`).
    fn claim_leadership(&self) {
        let claims: Vec<leadership::Claim> = self
            .multi
            .group_ids()
            .filter_map(|group| {
                let status = self.multi.status(group)?;
                (status.role == StateRole::Leader).then(|| leadership::Claim {
                    group,
                    term: status.term,
                    in_sync: self.replicas.view(group).in_sync,
                })
            })
            .collect();
        let payload = leadership::encode(self.incarnation, &claims);
        for peer in self.catalog.nodes() {
            let peer = *peer as u64;
            if peer != self.node_id {
                self.transport.send_many(
                    peer,
                    [Envelope {
                        group_id: leadership::LEADERSHIP_GROUP_ID,
                        payload: payload.clone(),
                    }],
                );
            }
        }
    }

    /// Records a peer's leadership of groups this node holds no replica of; after the peer
    /// restarted, forgets what this node's leaderships believed it holds.
    fn take_leadership_claims(&mut self, from: u64, payload: &[u8]) {
        let Some(claims) = leadership::decode(payload) else {
            warn!(from, "malformed leadership claims dropped");
            return;
        };
        let previous = self.peer_incarnations.insert(from, claims.incarnation);
        if previous.is_some_and(|previous| previous != claims.incarnation) {
            info!(peer = from, "peer restarted: re-probing its replicas");
            let groups: Vec<u64> = self.multi.group_ids().collect();
            for group in groups {
                self.multi.forget_progress(group, from);
            }
        }
        for claim in &claims.leading {
            if self.multi.has_group(claim.group) {
                self.replicas.update_view(claim.group, |view| {
                    leadership::apply_claim_as_follower(view, from, claim)
                });
            } else {
                self.replicas.update_view(claim.group, |view| {
                    leadership::apply_claim(view, from, claim)
                });
            }
        }
    }

    fn ready_round(&mut self) -> Result<(), crate::raft::log_store::StoreError> {
        // Applying metadata can create groups that are immediately ready; a few passes let
        // them start in the same turn.
        for _ in 0..4 {
            let mut output = Output::default();
            let mut installer = Installer {
                snapshots: &mut self.snapshots,
                replicas: &self.replicas,
                catalog: &self.catalog,
                offsets: &self.offsets,
                opener: &self.opener,
            };
            self.multi
                .handle_ready(&mut output, &mut |group, snapshot| {
                    installer.install(group, snapshot)
                })?;
            if std::mem::take(&mut self.snapshots.reconcile_replicas) {
                self.reconcile_replicas();
            }
            if output.is_empty() {
                break;
            }
            self.send(&mut output);
            for change in &output.role_changes {
                self.on_role_change(change.group, change.role, change.leader);
            }
            self.apply(output);
            self.note_metadata_caught_up();
        }
        Ok(())
    }

    /// Marks the metadata leader's view as soon as it has applied an entry of its own term
    /// (the group coordinator serves from then on), rather than at the next tick.
    fn note_metadata_caught_up(&mut self) {
        let Some(status) = self.multi.status(METADATA_GROUP_ID) else {
            return;
        };
        if status.role != StateRole::Leader
            || self.multi.term_of(METADATA_GROUP_ID, status.applied) != Some(status.term)
        {
            return;
        }
        self.replicas.update_view(METADATA_GROUP_ID, |view| {
            if view.is_leader && view.term == status.term {
                view.applied_own_term = true;
            }
        });
    }

    fn send(&mut self, output: &mut Output) {
        let mut by_peer: HashMap<u64, Vec<Envelope>> = HashMap::new();
        let mut snapshots_sent = Vec::new();
        for outbound in output.messages.drain(..) {
            if outbound.message.get_msg_type() == MessageType::MsgSnapshot {
                snapshots_sent.push((outbound.group, outbound.to));
            }
            match outbound.message.write_to_bytes() {
                Ok(bytes) => by_peer.entry(outbound.to).or_default().push(Envelope {
                    group_id: outbound.group,
                    payload: bytes.into(),
                }),
                Err(encode_error) => warn!(%encode_error, "raft message could not be encoded"),
            }
        }
        for (peer, envelopes) in by_peer {
            self.transport.send_many(peer, envelopes);
        }
        for (group, to) in snapshots_sent {
            self.on_snapshot_sent(group, to);
        }
    }

    fn on_role_change(&mut self, group: u64, role: StateRole, leader: u64) {
        let term = self.multi.status(group).map_or(0, |status| status.term);
        let is_leader = role == StateRole::Leader;
        self.replicas.update_view(group, |view| {
            view.leader = leader;
            if leader != 0 {
                view.last_leader = leader;
            }
            view.term = term;
            view.is_leader = is_leader;
            view.applied_own_term = false;
            if !is_leader {
                view.in_sync.clear();
            }
        });
        metrics::counter!("chronik_raft_leader_changes_total").increment(1);
        if !is_leader {
            // Proposals this node made as leader may never commit now: answer them, so the
            // client retries on the new leader (idempotent retries are de-duplicated at
            // apply). A metadata proposal is forwarded, so it stays pending.
            let lost: Vec<u64> = self
                .pending
                .iter()
                .filter(|(_, (pending_group, _))| {
                    *pending_group == group && group != METADATA_GROUP_ID
                })
                .map(|(id, _)| *id)
                .collect();
            for id in lost {
                if let Some((_, reply)) = self.pending.remove(&id) {
                    let _ = reply.send(Applied::NotProposed(ProposeError::NotLeader { leader }));
                }
            }
        }
    }

    fn apply(&mut self, output: Output) {
        for committed in output.committed {
            let group = committed.group;
            let mut touched = None;
            for raft_entry in committed.entries {
                if raft_entry.get_entry_type() != EntryType::EntryNormal
                    || raft_entry.data.is_empty()
                {
                    continue;
                }
                let (header, body) = match entry::decode(&raft_entry.data) {
                    Ok(decoded) => decoded,
                    Err(decode_error) => {
                        error!(group, index = raft_entry.index, %decode_error, "committed entry is undecodable; skipped");
                        continue;
                    }
                };
                if header.kind != EntryKind::SnapshotTaken {
                    self.snapshots
                        .note_applied(group, raft_entry.data.len() as u64);
                }
                let applied = match header.kind {
                    EntryKind::PartitionAppend => match self.replicas.get(group) {
                        Some(partition) => {
                            if raft_entry.index <= partition.applied_index() {
                                continue;
                            }
                            touched = Some(partition.clone());
                            Applied::Partition(partition.apply(
                                raft_entry.index,
                                raft_entry.term,
                                body,
                            ))
                        }
                        None => {
                            Applied::Partition(Err(AppendError::Storage("no local replica".into())))
                        }
                    },
                    EntryKind::Metadata => {
                        Applied::Metadata(self.apply_metadata(body, raft_entry.term))
                    }
                    EntryKind::SnapshotTaken => {
                        let proposed_here = header.origin_node == self.node_id;
                        self.apply_snapshot_record(group, body, proposed_here);
                        continue;
                    }
                };
                if header.origin_node == self.node_id {
                    if let Some((_, reply)) = self.pending.remove(&header.proposal_id) {
                        let _ = reply.send(applied);
                    }
                }
            }
            if let Some(partition) = touched {
                partition.publish_high_watermark();
            }
        }
    }

    fn apply_metadata(
        &mut self,
        body: &[u8],
        entry_term: u64,
    ) -> Result<(), crate::catalog::CatalogError> {
        let command: MetadataCommand = match serde_json::from_slice(body) {
            Ok(command) => command,
            Err(decode_error) => {
                error!(%decode_error, "metadata entry is undecodable; skipped");
                return Ok(());
            }
        };
        if let MetadataCommand::GroupOffsets(event) = &command {
            if let Some(written_term) = event.former_coordinator_term(entry_term) {
                warn!(
                    written_term,
                    entry_term, "group state from a deposed coordinator; not applied"
                );
                return Err(crate::catalog::CatalogError::FormerGroupCoordinator {
                    written_term,
                    entry_term,
                });
            }
            self.offsets.apply_replicated(event);
            return Ok(());
        }
        match self.catalog.apply(&command)? {
            CatalogChange::Nothing => {}
            CatalogChange::PartitionsCreated { topic, indexes } => {
                let local: Vec<(TopicSpec, i32)> = indexes
                    .into_iter()
                    .filter(|index| {
                        topic.assignments[*index as usize]
                            .replicas
                            .contains(&(self.node_id as i32))
                    })
                    .map(|index| (topic.clone(), index))
                    .collect();
                self.open_local_replicas(&local);
            }
            CatalogChange::TopicDeleted(topic) => {
                for assignment in &topic.assignments {
                    if let Some(partition) = self.replicas.remove(assignment.group_id) {
                        partition.delete_files();
                    }
                    if self.multi.has_group(assignment.group_id) {
                        if let Err(store_error) = self.multi.remove_group(assignment.group_id) {
                            warn!(group = assignment.group_id, %store_error, "could not drop a deleted partition's raft log");
                        }
                    }
                }
                info!(topic = %topic.name, "topic deleted");
            }
        }
        Ok(())
    }

    /// Leaders publish who is in sync, and hand leadership back to a caught-up preferred
    /// replica (so leaders spread again after a node returns).
    fn refresh_leader_views(&mut self) {
        let rebalance = self.ticks % REBALANCE_EVERY_TICKS == 0;
        let groups: Vec<u64> = self.multi.group_ids().collect();
        for group in groups {
            let Some(status) = self.multi.status(group) else {
                continue;
            };
            if status.role != StateRole::Leader {
                continue;
            }
            let in_sync: Vec<i32> = status
                .matched
                .iter()
                .filter(|(_, matched)| *matched + IN_SYNC_LAG_ENTRIES >= status.last_index)
                .map(|(id, _)| *id as i32)
                .collect();
            let applied_own_term = self.multi.term_of(group, status.applied) == Some(status.term);
            self.replicas.set_view(
                group,
                GroupView {
                    leader: self.node_id,
                    last_leader: self.node_id,
                    term: status.term,
                    is_leader: true,
                    in_sync,
                    applied_own_term,
                },
            );
            if rebalance && group != METADATA_GROUP_ID {
                if let Some(preferred) = self.preferred_leader(group) {
                    let caught_up = status
                        .matched
                        .get(&preferred)
                        .is_some_and(|m| *m >= status.last_index);
                    if preferred != self.node_id && caught_up {
                        self.multi.transfer_leader(group, preferred);
                    }
                }
            }
        }
    }

    fn preferred_leader(&self, group: u64) -> Option<u64> {
        let partition = self.replicas.get(group)?;
        let topic = self.catalog.topic(&partition.topic)?;
        let assignment = topic.assignments.get(partition.index as usize)?;
        assignment.replicas.first().map(|id| *id as u64)
    }
}
