//! The coordinator's side of replicated group state: taking the groups over from the
//! replicated state when this node becomes coordinator, giving them up when it stops, and
//! writing Stable generations and emptied groups through the [`super::super::GroupReplicator`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::{GroupCoordinator, GroupEntry};
use crate::group::events::GroupEvent;
use crate::group::replicated::StoredGroup;
use crate::group::state::{Group, GroupState};
use crate::group::types::{JoinResult, SyncResult};
use crate::group::{codes, monotonic_ms};

impl GroupEntry {
    /// Answers every parked call with `error` (the group is handed over or given up).
    fn abandon(&mut self, error: i16) {
        for (member_id, waiter) in self.join_waiters.drain() {
            let _ = waiter.send(JoinResult::error(&member_id, error));
        }
        for (_, waiter) in self.sync_waiters.drain() {
            let _ = waiter.send(SyncResult::error(error));
        }
    }

    /// The removal to write, by the coordinator of `coordinator_term`, when the group became
    /// Empty while the replicated state still holds a generation of it.
    pub(super) fn emptied(&mut self, coordinator_term: u64) -> Option<GroupEvent> {
        if self.group.state != GroupState::Empty {
            return None;
        }
        self.replicated_generation.take()?;
        Some(GroupEvent::GroupStateChanged {
            group: self.group.id.clone(),
            generation: self.group.generation,
            coordinator_term,
            state: None,
        })
    }
}

impl GroupCoordinator {
    /// Brings the in-memory groups in line with this node's role (under the groups lock).
    /// When it starts coordinating in a new term, every group is rebuilt from the replicated
    /// state, which is the truth then: a live copy kept from an earlier term may be older.
    /// `Err(NOT_COORDINATOR)` while it does not coordinate. Without a replicator (a single
    /// node with a local journal) the live groups are the only ones and nothing changes.
    pub(super) fn take_over(
        &self,
        groups: &mut HashMap<String, GroupEntry>,
        now: u64,
    ) -> Result<(), i16> {
        let Some(replicator) = self.replicator.get() else {
            return Ok(());
        };
        let loaded = self.loaded_term.load(Ordering::Acquire);
        let Some(term) = replicator.coordinator_term() else {
            if loaded != 0 {
                self.give_up(groups);
                tracing::info!(term = loaded, "no longer coordinating consumer groups");
            }
            return Err(codes::NOT_COORDINATOR);
        };
        if term == loaded {
            return Ok(());
        }
        self.give_up(groups);
        for (id, stored) in self.store.stored_groups() {
            let entry = Self::entry_from_stored(&id, &stored, now);
            groups.insert(id, entry);
        }
        for id in self.store.group_ids() {
            let group = self.new_group(&id, now);
            groups.entry(id).or_insert_with(|| GroupEntry::new(group));
        }
        self.loaded_term.store(term, Ordering::Release);
        let stable = groups
            .values()
            .filter(|entry| entry.group.state == GroupState::Stable)
            .count();
        tracing::info!(
            term,
            groups = groups.len(),
            stable,
            "coordinating consumer groups from the replicated state"
        );
        Ok(())
    }

    /// Drops every live group, answering their parked calls with NOT_COORDINATOR.
    fn give_up(&self, groups: &mut HashMap<String, GroupEntry>) {
        for entry in groups.values_mut() {
            entry.abandon(codes::NOT_COORDINATOR);
        }
        groups.clear();
        self.loaded_term.store(0, Ordering::Release);
    }

    fn entry_from_stored(id: &str, stored: &StoredGroup, now: u64) -> GroupEntry {
        let mut entry = GroupEntry::new(Group::from_stored(id, stored, now));
        entry.replicated_generation = Some(stored.generation);
        entry
    }

    /// The live group of `group_id` rebuilt from the replicated state, when this node has no
    /// live copy but the replicated state has a generation of it.
    pub(super) fn materialize(&self, group_id: &str, now: u64) -> Option<GroupEntry> {
        self.replicator.get()?;
        let stored = self.store.stored_group(group_id)?;
        tracing::info!(
            group = group_id,
            generation = stored.generation,
            "group materialized from the replicated state"
        );
        Some(Self::entry_from_stored(group_id, &stored, now))
    }

    /// A new, empty group; its Stable generations are written when there is a replicator.
    pub(super) fn new_group(&self, group_id: &str, now: u64) -> Group {
        let mut group = Group::new(group_id, now);
        group.hold_assignments_until_written = self.replicator.get().is_some();
        group
    }

    /// Writes the removals of emptied groups in the background (nobody waits for them).
    pub(super) fn spawn_writes(&self, writes: Vec<GroupEvent>) {
        if writes.is_empty() {
            return;
        }
        let Some(replicator) = self.replicator.get().cloned() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            for event in writes {
                if let Err(error) = replicator.replicate(event).await {
                    tracing::warn!(%error, "writing an emptied group failed");
                }
            }
        });
    }

    /// Writes generation `generation` of `group_id` (its leader's assignment just came in on
    /// the coordinator of `coordinator_term`); the parked SyncGroups are answered once the
    /// write is done, or failed if it fails. The write runs as its own task, so a leader that
    /// goes away does not leave it half done.
    pub(super) fn spawn_assignment_write(
        &self,
        group_id: &str,
        generation: i32,
        coordinator_term: u64,
        stored: StoredGroup,
    ) {
        let Some(replicator) = self.replicator.get().cloned() else {
            return;
        };
        let me = self.me.clone();
        let group = group_id.to_string();
        tokio::spawn(async move {
            let event = GroupEvent::GroupStateChanged {
                group: group.clone(),
                generation,
                coordinator_term,
                state: Some(stored),
            };
            let outcome = replicator.replicate(event).await;
            if let Some(me) = me.upgrade() {
                me.finish_assignment_write(&group, generation, outcome);
            }
        });
    }

    fn finish_assignment_write(
        &self,
        group_id: &str,
        generation: i32,
        outcome: Result<(), String>,
    ) {
        let now = monotonic_ms();
        let delay = self.settings.initial_rebalance_delay_ms;
        let mut groups = self.groups.lock();
        let Some(entry) = groups.get_mut(group_id) else {
            return;
        };
        let mut fx = Vec::new();
        match outcome {
            Ok(()) => {
                entry.group.assignment_written(generation, now, &mut fx);
                entry.replicated_generation = Some(
                    entry
                        .replicated_generation
                        .map_or(generation, |g| g.max(generation)),
                );
            }
            Err(error) => {
                tracing::warn!(group = group_id, generation, %error, "writing the group's generation failed; its members rejoin");
                entry.group.assignment_write_failed(
                    generation,
                    codes::NOT_COORDINATOR,
                    delay,
                    now,
                    &mut fx,
                );
            }
        }
        entry.deliver(fx);
    }
}
