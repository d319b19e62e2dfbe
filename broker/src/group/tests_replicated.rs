//! Replicated group membership: the event and its state, and coordinators handing groups over
//! through a shared replicated log (every node's store applies what is written, as the
//! metadata Raft group does).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::codes;
use super::tests_membership::{join_and_sync, join_req, new_member, open, spawn_join, sync_req};
use super::{
    GroupCoordinator, GroupEvent, GroupReplicator, GroupState, OffsetState, OffsetStore,
    StoredGroup, StoredMember, StoredProtocol,
};

/// The replicated log every node applies.
#[derive(Default)]
struct SharedLog {
    stores: Mutex<Vec<Arc<OffsetStore>>>,
    events: Mutex<Vec<GroupEvent>>,
    failing: AtomicBool,
    /// The term new entries are appended in (0: the writer's own term, as for a coordinator
    /// that still leads).
    leader_term: AtomicU64,
    /// Writes wait while a test holds this exclusively.
    gate: tokio::sync::RwLock<()>,
}

/// One node's handle on the log, with the term it coordinates in (0: it does not).
struct Node {
    log: Arc<SharedLog>,
    term: AtomicU64,
}

impl GroupReplicator for Node {
    fn replicate(&self, event: GroupEvent) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let _open = self.log.gate.read().await;
            if self.log.failing.load(Ordering::Acquire) {
                return Err("no quorum".to_string());
            }
            let entry_term = match self.log.leader_term.load(Ordering::Acquire) {
                0 => self.term.load(Ordering::Acquire),
                term => term,
            };
            if let Some(written) = event.former_coordinator_term(entry_term) {
                return Err(format!(
                    "written in term {written}, appended in {entry_term}"
                ));
            }
            for store in self.log.stores.lock().iter() {
                store.apply_replicated(&event);
            }
            self.log.events.lock().push(event);
            Ok(())
        })
    }

    fn coordinator_term(&self) -> Option<u64> {
        let term = self.term.load(Ordering::Acquire);
        (term != 0).then_some(term)
    }
}

/// A coordinator on the shared log, coordinating in `term` (0: not coordinating).
fn node(
    log: &Arc<SharedLog>,
    dir: &std::path::Path,
    term: u64,
) -> (Arc<GroupCoordinator>, Arc<Node>) {
    let coordinator = open(dir, 0);
    let handle = Arc::new(Node {
        log: log.clone(),
        term: AtomicU64::new(term),
    });
    coordinator.set_replicator(handle.clone());
    log.stores.lock().push(coordinator.store().clone());
    (coordinator, handle)
}

fn stored(generation: i32, members: &[&str]) -> StoredGroup {
    StoredGroup {
        generation,
        protocol_type: "consumer".into(),
        protocol_name: "range".into(),
        leader: members[0].into(),
        members: members
            .iter()
            .map(|id| StoredMember {
                member_id: id.to_string(),
                group_instance_id: None,
                client_id: "client".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 2_000,
                protocols: vec![StoredProtocol {
                    name: "range".into(),
                    metadata: vec![0, 1, 0xfe, 0xff],
                }],
                assignment: format!("assignment-of-{id}").into_bytes(),
            })
            .collect(),
    }
}

fn changed(group: &str, generation: i32, state: Option<StoredGroup>) -> GroupEvent {
    GroupEvent::GroupStateChanged {
        group: group.into(),
        generation,
        coordinator_term: 0,
        state,
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[test]
fn the_group_state_event_round_trips_through_json() {
    let event = changed("g", 4, Some(stored(4, &["a", "b"])));
    let json = serde_json::to_string(&event).unwrap();
    assert!(json.contains("\"event\":\"GroupStateChanged\""), "{json}");
    assert!(json.contains("\"metadata\":\"0001feff\""), "{json}");
    assert_eq!(serde_json::from_str::<GroupEvent>(&json).unwrap(), event);
    let removed = changed("g", 5, None);
    let json = serde_json::to_string(&removed).unwrap();
    assert_eq!(serde_json::from_str::<GroupEvent>(&json).unwrap(), removed);
}

#[test]
fn a_metadata_image_without_groups_still_loads() {
    use crate::snapshot::metadata_image::MetadataImage;
    let mut image = MetadataImage::default();
    image.groups.insert("g".into(), stored(2, &["a"]));
    let mut json = serde_json::to_value(&image).unwrap();
    assert_eq!(
        serde_json::from_value::<MetadataImage>(json.clone()).unwrap(),
        image
    );
    json.as_object_mut().unwrap().remove("groups");
    let older: MetadataImage = serde_json::from_value(json).unwrap();
    assert!(older.groups.is_empty());
}

#[test]
fn a_group_state_change_of_a_former_coordinator_is_recognized() {
    let written_in = |term: u64| GroupEvent::GroupStateChanged {
        group: "g".into(),
        generation: 2,
        coordinator_term: term,
        state: None,
    };
    assert_eq!(written_in(3).former_coordinator_term(3), None);
    assert_eq!(written_in(3).former_coordinator_term(4), Some(3));
    // Not fenced: events rebuilding a snapshot, and offsets.
    assert_eq!(written_in(0).former_coordinator_term(4), None);
    let offsets = GroupEvent::OffsetsCommitted {
        group: "g".into(),
        offsets: Vec::new(),
    };
    assert_eq!(offsets.former_coordinator_term(4), None);
    // Events written before the field existed read as not fenced.
    let older = r#"{"event":"GroupStateChanged","group":"g","generation":2,"state":null}"#;
    let older: GroupEvent = serde_json::from_str(older).unwrap();
    assert_eq!(older, written_in(0));
}

#[test]
fn applying_events_builds_the_stored_groups() {
    let mut state = OffsetState::default();
    state.apply(&changed("g", 1, Some(stored(1, &["a"]))));
    state.apply(&changed("h", 3, Some(stored(3, &["x", "y"]))));
    state.apply(&changed("g", 2, Some(stored(2, &["a", "b"]))));
    // A late write of an older generation does not replace a newer one.
    state.apply(&changed("g", 1, Some(stored(1, &["a"]))));
    assert_eq!(state.memberships().get("g"), Some(&stored(2, &["a", "b"])));
    assert_eq!(state.memberships().get("h"), Some(&stored(3, &["x", "y"])));
    // Removals: an older one is ignored, a newer one removes.
    state.apply(&changed("h", 2, None));
    assert!(state.memberships().get("h").is_some());
    state.apply(&changed("h", 4, None));
    assert_eq!(state.memberships().get("h"), None);
    assert_eq!(state.memberships().len(), 1);

    let mut rebuilt = OffsetState::default();
    for event in state.snapshot() {
        rebuilt.apply(&event);
    }
    assert_eq!(rebuilt, state);
    // The offsets alone (the metadata image keeps memberships in their own field).
    assert!(state.offset_events().is_empty());
}

#[tokio::test]
async fn a_new_coordinator_accepts_the_stored_generation() {
    let log = Arc::new(SharedLog::default());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_node) = node(&log, dir_a.path(), 1);
    let (b, b_node) = node(&log, dir_b.path(), 0);
    let first = new_member(&a, "g").await;
    let second = new_member(&a, "g").await;
    let generation = join_and_sync(&a, "g", &[&first, &second]).await;
    assert!(
        b.store().stored_group("g").is_some(),
        "the generation is written before SyncGroup answers"
    );
    assert!(matches!(
        log.events.lock().last(),
        Some(GroupEvent::GroupStateChanged {
            coordinator_term: 1,
            state: Some(_),
            ..
        })
    ));
    assert_eq!(b.heartbeat("g", &first, generation), codes::NOT_COORDINATOR);

    // The coordinator's node is lost; B is elected.
    a_node.term.store(0, Ordering::Release);
    b_node.term.store(2, Ordering::Release);
    assert_eq!(a.heartbeat("g", &first, generation), codes::NOT_COORDINATOR);
    assert_eq!(b.heartbeat("g", &first, generation), codes::NONE);
    assert_eq!(b.heartbeat("g", &second, generation), codes::NONE);
    assert_eq!(
        b.heartbeat("g", "unknown-member", generation),
        codes::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        b.heartbeat("g", &first, generation - 1),
        codes::ILLEGAL_GENERATION
    );
    let description = b.describe("g").unwrap();
    assert_eq!(description.state, GroupState::Stable);
    assert_eq!(description.generation, generation);
    let synced = b.sync(sync_req("g", &second, generation, &[])).await;
    assert_eq!(synced.error, codes::NONE);
    assert_eq!(
        synced.assignment,
        Bytes::from(format!("assignment-of-{second}"))
    );
    let offsets = vec![super::CommitOffset {
        topic: "t".into(),
        partition: 0,
        offset: 7,
        leader_epoch: -1,
        metadata: None,
    }];
    assert_eq!(
        b.commit_offsets("g", &first, generation, offsets).await,
        codes::NONE
    );
}

#[tokio::test]
async fn an_emptied_group_is_removed_from_the_replicated_state() {
    let log = Arc::new(SharedLog::default());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_node) = node(&log, dir_a.path(), 1);
    let (b, b_node) = node(&log, dir_b.path(), 0);
    let member = new_member(&a, "g").await;
    let generation = join_and_sync(&a, "g", &[&member]).await;
    assert_eq!(a.leave("g", &[(member.clone(), None)]), vec![codes::NONE]);
    eventually("the removal is written", || {
        b.store().stored_group("g").is_none()
    })
    .await;
    assert!(matches!(
        log.events.lock().last(),
        Some(GroupEvent::GroupStateChanged { state: None, .. })
    ));
    a_node.term.store(0, Ordering::Release);
    b_node.term.store(2, Ordering::Release);
    assert_eq!(
        b.heartbeat("g", &member, generation),
        codes::UNKNOWN_MEMBER_ID
    );
}

#[tokio::test]
async fn a_removal_event_ends_the_stored_group_for_a_new_coordinator() {
    let log = Arc::new(SharedLog::default());
    let dir = tempfile::tempdir().unwrap();
    let (b, b_node) = node(&log, dir.path(), 0);
    b.store()
        .apply_replicated(&changed("g", 3, Some(stored(3, &["m"]))));
    b.store().apply_replicated(&changed("g", 4, None));
    b_node.term.store(5, Ordering::Release);
    assert_eq!(b.heartbeat("g", "m", 3), codes::UNKNOWN_MEMBER_ID);
    assert!(b.describe("g").is_none());
}

#[tokio::test]
async fn a_regained_coordinatorship_serves_the_replicated_generation() {
    let log = Arc::new(SharedLog::default());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_node) = node(&log, dir_a.path(), 1);
    let (b, b_node) = node(&log, dir_b.path(), 0);
    let member = new_member(&a, "g").await;
    let old = join_and_sync(&a, "g", &[&member]).await;

    // B coordinates for a while and the group moves on to a newer generation there.
    a_node.term.store(0, Ordering::Release);
    b_node.term.store(2, Ordering::Release);
    let newer = join_and_sync(&b, "g", &[&member]).await;
    assert!(newer > old, "{newer} > {old}");

    // A becomes coordinator again: its live copy of the old generation must not win.
    b_node.term.store(0, Ordering::Release);
    a_node.term.store(3, Ordering::Release);
    assert_eq!(a.heartbeat("g", &member, newer), codes::NONE);
    assert_eq!(a.heartbeat("g", &member, old), codes::ILLEGAL_GENERATION);
    assert_eq!(a.describe("g").unwrap().generation, newer);
}

/// Two members of group "g" after their joins completed, before any SyncGroup.
struct Joined {
    first: String,
    second: String,
    generation: i32,
    leader: String,
    follower: String,
}

async fn two_members_joined(a: &Arc<GroupCoordinator>) -> Joined {
    let first = new_member(a, "g").await;
    let second = new_member(a, "g").await;
    let joins = [
        spawn_join(a, join_req("g", &first, 10_000, 2_000)),
        spawn_join(a, join_req("g", &second, 10_000, 2_000)),
    ];
    let mut results = Vec::new();
    for join in joins {
        results.push(join.await.unwrap());
    }
    let generation = results[0].generation_id;
    let leader = results[0].leader.clone();
    let follower = if leader == first {
        second.clone()
    } else {
        first.clone()
    };
    Joined {
        first,
        second,
        generation,
        leader,
        follower,
    }
}

#[tokio::test]
async fn a_failed_generation_write_fails_the_sync_with_a_retriable_error() {
    let log = Arc::new(SharedLog::default());
    let dir = tempfile::tempdir().unwrap();
    let (a, _a_node) = node(&log, dir.path(), 1);
    let Joined {
        first,
        second,
        generation,
        leader,
        follower,
    } = two_members_joined(&a).await;
    let waiting = {
        let a = a.clone();
        let request = sync_req("g", &follower, generation, &[]);
        tokio::spawn(async move { a.sync(request).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.failing.store(true, Ordering::Release);
    let assignments = [(first.as_str(), "p0"), (second.as_str(), "p1")];
    let answer = a
        .sync(sync_req("g", &leader, generation, &assignments))
        .await;
    assert_eq!(answer.error, codes::NOT_COORDINATOR);
    assert_eq!(waiting.await.unwrap().error, codes::NOT_COORDINATOR);
    assert!(log.events.lock().is_empty());
    // The members are told to rejoin.
    assert_eq!(
        a.heartbeat("g", &first, generation),
        codes::REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        a.describe("g").unwrap().state,
        GroupState::PreparingRebalance
    );
}

#[tokio::test]
async fn a_sync_during_the_write_waits_for_it() {
    let log = Arc::new(SharedLog::default());
    let dir = tempfile::tempdir().unwrap();
    let (a, _a_node) = node(&log, dir.path(), 1);
    let Joined {
        first,
        second,
        generation,
        leader,
        follower,
    } = two_members_joined(&a).await;
    let held = log.gate.write().await;
    let leader_sync = {
        let a = a.clone();
        let assignments = [(first.as_str(), "p0"), (second.as_str(), "p1")];
        let request = sync_req("g", &leader, generation, &assignments);
        tokio::spawn(async move { a.sync(request).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    // The leader's assignment is in but not written: a follower arriving now waits too.
    let follower_sync = {
        let a = a.clone();
        let request = sync_req("g", &follower, generation, &[]);
        tokio::spawn(async move { a.sync(request).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!leader_sync.is_finished());
    assert!(!follower_sync.is_finished());
    assert!(a.store().stored_groups().is_empty());
    drop(held);
    let (leader_answer, follower_answer) =
        (leader_sync.await.unwrap(), follower_sync.await.unwrap());
    assert_eq!(leader_answer.error, codes::NONE);
    assert_eq!(follower_answer.error, codes::NONE);
    let expected = |member: &str| Bytes::from_static(if member == first { b"p0" } else { b"p1" });
    assert_eq!(leader_answer.assignment, expected(&leader));
    assert_eq!(follower_answer.assignment, expected(&follower));
    let stored: BTreeMap<String, StoredGroup> = a.store().stored_groups();
    assert_eq!(stored["g"].generation, generation);
}

#[tokio::test]
async fn a_deposed_coordinators_generation_is_not_applied() {
    let log = Arc::new(SharedLog::default());
    let dir = tempfile::tempdir().unwrap();
    let (a, _a_node) = node(&log, dir.path(), 1);
    let member = new_member(&a, "g").await;
    let joined = a.join(join_req("g", &member, 10_000, 2_000)).await;
    assert_eq!(joined.error, codes::NONE);
    // A new leader was elected in term 2 before A noticed: A's write reaches the log
    // forwarded, in term 2, and is refused there.
    log.leader_term.store(2, Ordering::Release);
    let answer = a
        .sync(sync_req(
            "g",
            &member,
            joined.generation_id,
            &[(member.as_str(), "p0")],
        ))
        .await;
    assert_eq!(answer.error, codes::NOT_COORDINATOR);
    assert!(a.store().stored_groups().is_empty());
}
