//! The join phase of Kafka's classic group protocol on one [`Group`]: JoinGroup, the start and
//! end of a rebalance, member removal.
//!
//! Every method takes the current time (`now`, on [`super::monotonic_ms`]'s clock) and does no
//! I/O. A call either answers at once ([`Reply::Now`]) or parks ([`Reply::Parked`]): the caller
//! keeps a waiter for the member and the answer comes later as an [`Effect`], pushed by whatever
//! transition completes it (another member's join or sync, a leave, a timer in
//! [`Group::poll_timers`]). Effects pushed by a call are delivered by the caller after it has
//! registered its own waiter, so a call can complete itself.

use bytes::Bytes;

use super::codes;
use super::state::{Group, GroupState, InitialDelay, Member};
use super::types::{Effect, JoinMember, JoinRequest, JoinResult, Reply, SyncResult};

impl Group {
    /// JoinGroup. `generated_id` is the id given to a member joining without one.
    pub fn join(
        &mut self,
        req: &JoinRequest,
        generated_id: String,
        initial_delay_ms: u64,
        now: u64,
        fx: &mut Vec<Effect>,
    ) -> Reply<JoinResult> {
        if self.state == GroupState::Dead {
            return Reply::Now(JoinResult::error(
                &req.member_id,
                codes::COORDINATOR_NOT_AVAILABLE,
            ));
        }
        let supported = self.supports_protocols(&req.protocol_type, &req.protocols);
        if req.member_id.is_empty() {
            if !supported {
                return Reply::Now(JoinResult::error("", codes::INCONSISTENT_GROUP_PROTOCOL));
            }
            if req.require_known_member_id {
                let deadline = now + req.session_timeout_ms.max(0) as u64;
                self.pending_members.insert(generated_id.clone(), deadline);
                return Reply::Now(JoinResult::error(&generated_id, codes::MEMBER_ID_REQUIRED));
            }
            return self.add_member(req, generated_id, initial_delay_ms, now, fx);
        }
        if self.pending_members.contains_key(&req.member_id) {
            if !supported {
                return Reply::Now(JoinResult::error(
                    &req.member_id,
                    codes::INCONSISTENT_GROUP_PROTOCOL,
                ));
            }
            self.pending_members.remove(&req.member_id);
            return self.add_member(req, req.member_id.clone(), initial_delay_ms, now, fx);
        }
        if !self.has_member(&req.member_id) {
            return Reply::Now(JoinResult::error(&req.member_id, codes::UNKNOWN_MEMBER_ID));
        }
        if !supported {
            return Reply::Now(JoinResult::error(
                &req.member_id,
                codes::INCONSISTENT_GROUP_PROTOCOL,
            ));
        }
        let unchanged = self
            .member(&req.member_id)
            .is_some_and(|m| m.protocols_match(&req.protocols));
        match self.state {
            GroupState::PreparingRebalance => self.update_member(req, initial_delay_ms, now, fx),
            GroupState::CompletingRebalance if unchanged => {
                // A retried JoinGroup of the generation just formed: answer it again.
                Reply::Now(self.current_join_result(&req.member_id))
            }
            GroupState::Stable if unchanged && !self.is_leader(&req.member_id) => {
                if let Some(m) = self.member_mut(&req.member_id) {
                    m.last_heartbeat_ms = now;
                }
                Reply::Now(self.current_join_result(&req.member_id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(req, initial_delay_ms, now, fx)
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinResult::error(&req.member_id, codes::UNKNOWN_MEMBER_ID))
            }
        }
    }

    fn add_member(
        &mut self,
        req: &JoinRequest,
        id: String,
        initial_delay_ms: u64,
        now: u64,
        fx: &mut Vec<Effect>,
    ) -> Reply<JoinResult> {
        // Static membership is treated as dynamic, except that a new member with the
        // instance id of an existing one replaces it (the old incarnation is gone).
        if let Some(instance) = &req.group_instance_id {
            let stale: Vec<String> = self
                .members
                .iter()
                .filter(|m| m.group_instance_id.as_ref() == Some(instance) && m.id != id)
                .map(|m| m.id.clone())
                .collect();
            for old in stale {
                self.remove_member(&old, codes::UNKNOWN_MEMBER_ID, initial_delay_ms, now, fx);
            }
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.push(Member {
            id,
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: true,
            awaiting_sync: false,
            last_heartbeat_ms: now,
        });
        if let Some(delay) = self.initial_delay.as_mut() {
            delay.new_member_added = true;
        }
        self.maybe_prepare_rebalance(initial_delay_ms, now, fx);
        self.maybe_complete_join(now, fx);
        Reply::Parked
    }

    fn update_member(
        &mut self,
        req: &JoinRequest,
        initial_delay_ms: u64,
        now: u64,
        fx: &mut Vec<Effect>,
    ) -> Reply<JoinResult> {
        if let Some(m) = self.member_mut(&req.member_id) {
            m.protocols = req.protocols.clone();
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            m.awaiting_join = true;
            m.last_heartbeat_ms = now;
        }
        self.maybe_prepare_rebalance(initial_delay_ms, now, fx);
        self.maybe_complete_join(now, fx);
        Reply::Parked
    }

    /// The JoinGroup answer for `member_id` in the current generation.
    pub fn current_join_result(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if self.is_leader(member_id) {
            self.members
                .iter()
                .map(|m| JoinMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(&protocol).cloned().unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: codes::NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }

    fn maybe_prepare_rebalance(&mut self, initial_delay_ms: u64, now: u64, fx: &mut Vec<Effect>) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(initial_delay_ms, now, fx);
        }
    }

    /// Starts a rebalance: parked SyncGroups fail with REBALANCE_IN_PROGRESS, the join phase
    /// begins with its deadline (or the initial delay for a formerly empty group).
    pub(super) fn prepare_rebalance(
        &mut self,
        initial_delay_ms: u64,
        now: u64,
        fx: &mut Vec<Effect>,
    ) {
        // A generation still being written is not handed out: its SyncGroups fail like those
        // of a generation still completing.
        let unfinished = self.assignment_write.take().is_some();
        if self.state == GroupState::CompletingRebalance || unfinished {
            for m in self.members.iter_mut() {
                m.assignment = Bytes::new();
                if m.awaiting_sync {
                    m.awaiting_sync = false;
                    fx.push(Effect::Sync {
                        member_id: m.id.clone(),
                        result: SyncResult::error(codes::REBALANCE_IN_PROGRESS),
                    });
                }
            }
        }
        let timeout = self.rebalance_timeout_ms();
        if self.state == GroupState::Empty && initial_delay_ms > 0 {
            let delay = initial_delay_ms;
            self.initial_delay = Some(InitialDelay {
                until_ms: now + delay,
                remaining_ms: timeout.saturating_sub(delay),
                new_member_added: false,
            });
            self.rebalance_deadline_ms = None;
        } else {
            self.initial_delay = None;
            self.rebalance_deadline_ms = Some(now + timeout);
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        self.empty_since_ms = None;
        self.state = GroupState::PreparingRebalance;
    }

    pub(super) fn maybe_complete_join(&mut self, now: u64, fx: &mut Vec<Effect>) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && self.all_members_joined()
        {
            self.complete_join(now, fx);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation advances,
    /// the protocol and leader are chosen and every parked JoinGroup is answered.
    pub(super) fn complete_join(&mut self, now: u64, fx: &mut Vec<Effect>) {
        let missing: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            if let Some(m) = self.detach_member(&id) {
                if m.awaiting_sync {
                    fx.push(Effect::Sync {
                        member_id: id,
                        result: SyncResult::error(codes::UNKNOWN_MEMBER_ID),
                    });
                }
            }
        }
        self.rebalance_deadline_ms = None;
        self.initial_delay = None;
        self.generation += 1;
        ::metrics::counter!("chronik_group_rebalances_total").increment(1);
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.state = GroupState::Empty;
            self.empty_since_ms = Some(now);
            return;
        }
        if !self.leader.as_deref().is_some_and(|id| self.has_member(id)) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.protocol = self.select_protocol().or_else(|| {
            // Not reachable through JoinGroup's checks; fall back to the leader's first choice.
            let leader = self.leader.as_deref().and_then(|id| self.member(id))?;
            leader.protocols.first().map(|(name, _)| name.clone())
        });
        self.state = GroupState::CompletingRebalance;
        self.pending_sync = self.members.iter().map(|m| m.id.clone()).collect();
        self.sync_deadline_ms = Some(now + self.rebalance_timeout_ms());
        for m in self.members.iter_mut() {
            m.awaiting_join = false;
            m.last_heartbeat_ms = now;
        }
        for id in self
            .members
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>()
        {
            let result = self.current_join_result(&id);
            fx.push(Effect::Join {
                member_id: id,
                result,
            });
        }
    }

    /// Takes a member out of the member list (and the leadership), with no state transition.
    fn detach_member(&mut self, id: &str) -> Option<Member> {
        let pos = self.members.iter().position(|m| m.id == id)?;
        let member = self.members.remove(pos);
        self.pending_sync.remove(id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
        if self.is_leader(id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        Some(member)
    }

    /// Removes a member (leave, expiry, replacement): its parked calls fail with `error` and the
    /// rest of the group rebalances.
    pub fn remove_member(
        &mut self,
        id: &str,
        error: i16,
        initial_delay_ms: u64,
        now: u64,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let Some(member) = self.detach_member(id) else {
            return false;
        };
        if member.awaiting_join {
            fx.push(Effect::Join {
                member_id: member.id.clone(),
                result: JoinResult::error(&member.id, error),
            });
        }
        if member.awaiting_sync {
            fx.push(Effect::Sync {
                member_id: member.id.clone(),
                result: SyncResult::error(error),
            });
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(initial_delay_ms, now, fx);
                self.maybe_complete_join(now, fx);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
        true
    }
}
