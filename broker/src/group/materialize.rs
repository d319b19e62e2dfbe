//! Between a live [`Group`] and its replicated form ([`StoredGroup`]): the Stable generation
//! written when the leader's assignment is in, the outcome of that write, and a group rebuilt
//! from it on a new coordinator. Same conventions as [`super::membership`]: no I/O, the time
//! as an argument, answers to parked calls as [`Effect`]s.

use bytes::Bytes;

use super::replicated::{StoredGroup, StoredMember, StoredProtocol};
use super::state::{Group, GroupState, Member};
use super::types::{Effect, SyncResult};

impl Group {
    /// The group rebuilt from its replicated Stable generation: the same members, leader,
    /// protocol and assignments, every session starting afresh at `now`.
    pub fn from_stored(id: &str, stored: &StoredGroup, now: u64) -> Group {
        let mut group = Group::new(id, now);
        group.state = GroupState::Stable;
        group.generation = stored.generation;
        group.protocol_type = Some(stored.protocol_type.clone());
        group.protocol = Some(stored.protocol_name.clone());
        group.leader = Some(stored.leader.clone());
        group.empty_since_ms = None;
        group.hold_assignments_until_written = true;
        group.members = stored
            .members
            .iter()
            .map(|member| Member {
                id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                session_timeout_ms: member.session_timeout_ms,
                rebalance_timeout_ms: member.rebalance_timeout_ms,
                protocol_type: stored.protocol_type.clone(),
                protocols: member
                    .protocols
                    .iter()
                    .map(|p| (p.name.clone(), Bytes::from(p.metadata.clone())))
                    .collect(),
                assignment: Bytes::from(member.assignment.clone()),
                awaiting_join: false,
                awaiting_sync: false,
                last_heartbeat_ms: now,
            })
            .collect();
        group
    }

    /// The current generation in its replicated form (meaningful once the leader's
    /// assignment is in).
    pub fn to_stored(&self) -> StoredGroup {
        StoredGroup {
            generation: self.generation,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: self.protocol.clone().unwrap_or_default(),
            leader: self.leader.clone().unwrap_or_default(),
            members: self
                .members
                .iter()
                .map(|m| StoredMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m
                        .protocols
                        .iter()
                        .map(|(name, metadata)| StoredProtocol {
                            name: name.clone(),
                            metadata: metadata.to_vec(),
                        })
                        .collect(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// Generation `generation` is written: the SyncGroups waiting for it get their
    /// assignments. Nothing happens when a rebalance already replaced that generation.
    pub fn assignment_written(&mut self, generation: i32, now: u64, fx: &mut Vec<Effect>) {
        if self.assignment_write != Some(generation) {
            return;
        }
        self.assignment_write = None;
        if self.state != GroupState::Stable || self.generation != generation {
            return;
        }
        for m in self.members.iter_mut().filter(|m| m.awaiting_sync) {
            fx.push(m.answer_sync(self.protocol_type.as_deref(), self.protocol.as_deref(), now));
        }
    }

    /// Writing generation `generation` failed: the waiting SyncGroups get `error` (a
    /// retriable one, so the members find the coordinator and rejoin) and the group
    /// rebalances.
    pub fn assignment_write_failed(
        &mut self,
        generation: i32,
        error: i16,
        initial_delay_ms: u64,
        now: u64,
        fx: &mut Vec<Effect>,
    ) {
        if self.assignment_write != Some(generation) {
            return;
        }
        self.assignment_write = None;
        for m in self.members.iter_mut().filter(|m| m.awaiting_sync) {
            m.awaiting_sync = false;
            fx.push(Effect::Sync {
                member_id: m.id.clone(),
                result: SyncResult::error(error),
            });
        }
        if self.state == GroupState::Stable && self.generation == generation {
            for m in self.members.iter_mut() {
                m.assignment = Bytes::new();
            }
            self.prepare_rebalance(initial_delay_ms, now, fx);
        }
    }
}
