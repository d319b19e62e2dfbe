//! Membership protocol tests against [`GroupCoordinator`]: join/sync rounds, rebalances seen
//! through heartbeats, session expiry, leave, MEMBER_ID_REQUIRED, stale generations.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::codes;
use super::{GroupCoordinator, GroupSettings, GroupState, JoinRequest, JoinResult, SyncRequest};

pub(crate) fn settings(initial_delay_ms: u64) -> GroupSettings {
    GroupSettings {
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms: initial_delay_ms,
    }
}

pub(crate) fn open(dir: &std::path::Path, initial_delay_ms: u64) -> Arc<GroupCoordinator> {
    GroupCoordinator::open(dir, settings(initial_delay_ms)).unwrap()
}

pub(crate) fn join_req(
    group: &str,
    member_id: &str,
    session_ms: i32,
    rebalance_ms: i32,
) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: session_ms,
        rebalance_timeout_ms: rebalance_ms,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from(format!("range-{member_id}"))),
            ("roundrobin".into(), Bytes::from_static(b"rr")),
        ],
        require_known_member_id: true,
    }
}

/// A new member id (first JoinGroup round trip, v4+).
pub(crate) async fn new_member(coord: &GroupCoordinator, group: &str) -> String {
    let result = coord.join(join_req(group, "", 10_000, 2_000)).await;
    assert_eq!(result.error, codes::MEMBER_ID_REQUIRED);
    assert!(
        result.member_id.starts_with("client-"),
        "{}",
        result.member_id
    );
    result.member_id
}

pub(crate) fn spawn_join(
    coord: &Arc<GroupCoordinator>,
    req: JoinRequest,
) -> tokio::task::JoinHandle<JoinResult> {
    let coord = coord.clone();
    tokio::spawn(async move { coord.join(req).await })
}

pub(crate) fn sync_req(
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &str)],
) -> SyncRequest {
    SyncRequest {
        group_id: group.into(),
        member_id: member.into(),
        generation_id: generation,
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

/// Joins `members` (already holding ids) into one generation and syncs them; returns the
/// generation. The first result with a member list is the leader's.
pub(crate) async fn join_and_sync(
    coord: &Arc<GroupCoordinator>,
    group: &str,
    members: &[&str],
) -> i32 {
    let handles: Vec<_> = members
        .iter()
        .map(|m| spawn_join(coord, join_req(group, m, 10_000, 2_000)))
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    let generation = results[0].generation_id;
    for r in &results {
        assert_eq!(r.error, codes::NONE, "{r:?}");
        assert_eq!(r.generation_id, generation);
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
    }
    let leader = results[0].leader.clone();
    let leader_result = results.iter().find(|r| r.member_id == leader).unwrap();
    assert_eq!(leader_result.members.len(), members.len());
    let assignments: Vec<(String, String)> = members
        .iter()
        .map(|m| (m.to_string(), format!("assignment-of-{m}")))
        .collect();
    let borrowed: Vec<(&str, &str)> = assignments
        .iter()
        .map(|(m, a)| (m.as_str(), a.as_str()))
        .collect();
    let mut followers = Vec::new();
    for m in members.iter().filter(|m| **m != leader) {
        let coord = coord.clone();
        let req = sync_req(group, m, generation, &[]);
        followers.push((
            m.to_string(),
            tokio::spawn(async move { coord.sync(req).await }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mine = coord
        .sync(sync_req(group, &leader, generation, &borrowed))
        .await;
    assert_eq!(mine.error, codes::NONE);
    assert_eq!(
        mine.assignment,
        Bytes::from(format!("assignment-of-{leader}"))
    );
    for (m, h) in followers {
        let r = h.await.unwrap();
        assert_eq!(r.error, codes::NONE, "{m}");
        assert_eq!(r.assignment, Bytes::from(format!("assignment-of-{m}")));
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    }
    assert_eq!(coord.describe(group).unwrap().state, GroupState::Stable);
    generation
}

#[tokio::test]
async fn two_members_join_and_sync() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let a = new_member(&coord, "g").await;
    let b = new_member(&coord, "g").await;
    assert_ne!(a, b);
    let ja = spawn_join(&coord, join_req("g", &a, 10_000, 2_000));
    tokio::time::sleep(Duration::from_millis(30)).await;
    // B's id is still outstanding: the join phase waits for it.
    assert!(!ja.is_finished());
    assert_eq!(
        coord.describe("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    let jb = spawn_join(&coord, join_req("g", &b, 10_000, 2_000));
    let (ra, rb) = (ja.await.unwrap(), jb.await.unwrap());
    assert_eq!((ra.error, rb.error), (codes::NONE, codes::NONE));
    assert_eq!(ra.generation_id, 1);
    assert_eq!(rb.generation_id, 1);
    assert_eq!(ra.leader, a);
    assert_eq!(rb.leader, a);
    let ids: Vec<&str> = ra.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()]);
    assert_eq!(ra.members[1].metadata, Bytes::from(format!("range-{b}")));
    assert!(rb.members.is_empty());
    assert_eq!(
        coord.describe("g").unwrap().state,
        GroupState::CompletingRebalance
    );

    // The follower's SyncGroup waits for the leader's.
    let cb = coord.clone();
    let bb = b.clone();
    let sb = tokio::spawn(async move { cb.sync(sync_req("g", &bb, 1, &[])).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!sb.is_finished());
    let sa = coord
        .sync(sync_req(
            "g",
            &a,
            1,
            &[(a.as_str(), "p0"), (b.as_str(), "p1")],
        ))
        .await;
    assert_eq!(sa.error, codes::NONE);
    assert_eq!(sa.assignment, Bytes::from_static(b"p0"));
    let sb = sb.await.unwrap();
    assert_eq!(sb.error, codes::NONE);
    assert_eq!(sb.assignment, Bytes::from_static(b"p1"));

    let description = coord.describe("g").unwrap();
    assert_eq!(description.state, GroupState::Stable);
    assert_eq!(description.protocol, "range");
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(description.members.len(), 2);
    assert_eq!(description.members[1].assignment, Bytes::from_static(b"p1"));
    assert_eq!(description.members[0].client_host, "/127.0.0.1");
    assert_eq!(coord.heartbeat("g", &a, 1), codes::NONE);
    assert_eq!(coord.heartbeat("g", &b, 1), codes::NONE);
    // A repeated SyncGroup in Stable answers the assignment again.
    let again = coord.sync(sync_req("g", &b, 1, &[])).await;
    assert_eq!(again.assignment, Bytes::from_static(b"p1"));
    // A follower rejoining with unchanged metadata in Stable gets the generation back.
    let rejoin = coord.join(join_req("g", &b, 10_000, 2_000)).await;
    assert_eq!((rejoin.error, rejoin.generation_id), (codes::NONE, 1));
    assert_eq!(coord.describe("g").unwrap().state, GroupState::Stable);
}

#[tokio::test]
async fn third_member_triggers_rebalance_seen_by_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let a = new_member(&coord, "g").await;
    let b = new_member(&coord, "g").await;
    let generation = join_and_sync(&coord, "g", &[&a, &b]).await;
    let c = new_member(&coord, "g").await;
    let jc = spawn_join(&coord, join_req("g", &c, 10_000, 2_000));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        coord.describe("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    assert_eq!(
        coord.heartbeat("g", &a, generation),
        codes::REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        coord.heartbeat("g", &b, generation),
        codes::REBALANCE_IN_PROGRESS
    );
    // Commits of the current generation are still accepted while rebalancing.
    assert_eq!(
        coord.commit_offsets("g", &a, generation, vec![]).await,
        codes::NONE
    );
    let ja = spawn_join(&coord, join_req("g", &a, 10_000, 2_000));
    let jb = spawn_join(&coord, join_req("g", &b, 10_000, 2_000));
    let (ra, rb, rc) = (ja.await.unwrap(), jb.await.unwrap(), jc.await.unwrap());
    for r in [&ra, &rb, &rc] {
        assert_eq!(r.error, codes::NONE);
        assert_eq!(r.generation_id, generation + 1);
        assert_eq!(r.leader, a, "the leader stays the leader");
    }
    assert_eq!(ra.members.len(), 3);
    // Sync the new generation.
    let cb = coord.clone();
    let (bb, cc) = (b.clone(), c.clone());
    let g2 = generation + 1;
    let sb = tokio::spawn(async move { cb.sync(sync_req("g", &bb, g2, &[])).await });
    let cc2 = coord.clone();
    let sc = tokio::spawn(async move { cc2.sync(sync_req("g", &cc, g2, &[])).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let sa = coord
        .sync(sync_req(
            "g",
            &a,
            g2,
            &[(a.as_str(), "x"), (b.as_str(), "y"), (c.as_str(), "z")],
        ))
        .await;
    assert_eq!(sa.assignment, Bytes::from_static(b"x"));
    assert_eq!(sb.await.unwrap().assignment, Bytes::from_static(b"y"));
    assert_eq!(sc.await.unwrap().assignment, Bytes::from_static(b"z"));
    assert_eq!(coord.heartbeat("g", &c, g2), codes::NONE);
    assert_eq!(
        coord.heartbeat("g", &c, generation),
        codes::ILLEGAL_GENERATION
    );
}

#[tokio::test]
async fn member_id_required_flow_and_join_errors() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let first = coord.join(join_req("g", "", 10_000, 2_000)).await;
    assert_eq!(first.error, codes::MEMBER_ID_REQUIRED);
    assert_eq!(first.generation_id, -1);
    assert!(first.member_id.starts_with("client-"));
    // An id that was never handed out.
    let unknown = coord
        .join(join_req("g", "client-made-up", 10_000, 2_000))
        .await;
    assert_eq!(unknown.error, codes::UNKNOWN_MEMBER_ID);
    let unknown_group = coord
        .join(join_req("nope", "client-made-up", 10_000, 2_000))
        .await;
    assert_eq!(unknown_group.error, codes::UNKNOWN_MEMBER_ID);
    let joined = coord
        .join(join_req("g", &first.member_id, 10_000, 2_000))
        .await;
    assert_eq!(joined.error, codes::NONE);
    assert_eq!(joined.member_id, first.member_id);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, first.member_id);
    // v0-3 joins get an id at once.
    let mut old = join_req("h", "", 10_000, 2_000);
    old.require_known_member_id = false;
    let r = coord.join(old).await;
    assert_eq!(r.error, codes::NONE);
    assert!(!r.member_id.is_empty());
    // Session timeout bounds.
    let r = coord.join(join_req("g", "", 5, 2_000)).await;
    assert_eq!(r.error, codes::INVALID_SESSION_TIMEOUT);
    let r = coord.join(join_req("g", "", 600_000, 2_000)).await;
    assert_eq!(r.error, codes::INVALID_SESSION_TIMEOUT);
    // Protocols that do not intersect the group's.
    let mut other = join_req("g", "", 10_000, 2_000);
    other.protocols = vec![("sticky".into(), Bytes::new())];
    assert_eq!(
        coord.join(other).await.error,
        codes::INCONSISTENT_GROUP_PROTOCOL
    );
    let mut other = join_req("g", "", 10_000, 2_000);
    other.protocol_type = "connect".into();
    assert_eq!(
        coord.join(other).await.error,
        codes::INCONSISTENT_GROUP_PROTOCOL
    );
    let mut empty = join_req("fresh", "", 10_000, 2_000);
    empty.protocols.clear();
    assert_eq!(
        coord.join(empty).await.error,
        codes::INCONSISTENT_GROUP_PROTOCOL
    );
    let r = coord.join(join_req("", "", 10_000, 2_000)).await;
    assert_eq!(r.error, codes::INVALID_GROUP_ID);
}

#[tokio::test]
async fn stale_generation_is_illegal_for_sync_heartbeat_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let a = new_member(&coord, "g").await;
    let generation = join_and_sync(&coord, "g", &[&a]).await;
    // A's metadata changes: a new generation forms.
    let mut req = join_req("g", &a, 10_000, 2_000);
    req.protocols.reverse();
    let r = coord.join(req).await;
    assert_eq!(r.generation_id, generation + 1);
    let stale = coord.sync(sync_req("g", &a, generation, &[])).await;
    assert_eq!(stale.error, codes::ILLEGAL_GENERATION);
    assert_eq!(
        coord.heartbeat("g", &a, generation),
        codes::ILLEGAL_GENERATION
    );
    assert_eq!(
        coord.commit_offsets("g", &a, generation, vec![]).await,
        codes::ILLEGAL_GENERATION
    );
    // Waiting for the leader's assignment: commits must wait too.
    assert_eq!(
        coord.commit_offsets("g", &a, generation + 1, vec![]).await,
        codes::REBALANCE_IN_PROGRESS
    );
    // SyncGroup v5 protocol checks.
    let mut wrong = sync_req("g", &a, generation + 1, &[]);
    wrong.protocol_name = Some("range".into()); // the new generation chose roundrobin
    assert_eq!(
        coord.sync(wrong).await.error,
        codes::INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(
        coord
            .commit_offsets("g", "stranger", generation + 1, vec![])
            .await,
        codes::UNKNOWN_MEMBER_ID
    );
    // A simple (generation -1) commit is refused while the group has members...
    assert_eq!(
        coord.commit_offsets("g", "", -1, vec![]).await,
        codes::UNKNOWN_MEMBER_ID
    );
    // ...and a commit with a generation to a group that does not exist is illegal.
    assert_eq!(
        coord.commit_offsets("none", "m", 3, vec![]).await,
        codes::ILLEGAL_GENERATION
    );
    assert_eq!(
        coord.sync(sync_req("none", "m", 1, &[])).await.error,
        codes::UNKNOWN_MEMBER_ID
    );
    assert_eq!(coord.heartbeat("none", "m", 1), codes::UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn initial_rebalance_delay_gathers_members_into_one_generation() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 300);
    let mut first = join_req("g", "", 10_000, 5_000);
    first.require_known_member_id = false;
    let started = std::time::Instant::now();
    let ja = spawn_join(&coord, first.clone());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let jb = spawn_join(&coord, first);
    let (ra, rb) = (ja.await.unwrap(), jb.await.unwrap());
    // B joined inside the first delay period, so a second period ran.
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ra.generation_id, 1);
    assert_eq!(rb.generation_id, 1);
    assert_eq!(ra.members.len() + rb.members.len(), 2);
}

#[tokio::test]
async fn list_and_describe_report_states() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let a = new_member(&coord, "stable").await;
    join_and_sync(&coord, "stable", &[&a]).await;
    assert_eq!(
        coord.commit_offsets("simple", "", -1, vec![]).await,
        codes::NONE
    );
    let listed = coord.list();
    let summary: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.protocol_type.as_str(),
                g.state.name(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![("simple", "", "Empty"), ("stable", "consumer", "Stable")]
    );
    assert!(coord.describe("unknown").is_none());
    let d = coord.describe("stable").unwrap();
    assert_eq!(d.members[0].client_id, "client");
    assert_eq!(d.members[0].metadata, Bytes::from(format!("range-{a}")));
}
