//! Session and departure tests: expiry after the session timeout, the rebalance timeout and
//! the SyncGroup deadline; LeaveGroup.

use std::time::Duration;

use bytes::Bytes;

use super::codes;
use super::tests_membership::{join_and_sync, join_req, new_member, open, spawn_join, sync_req};
use super::GroupState;

#[tokio::test]
async fn silent_member_is_expelled_after_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let a = new_member(&coord, "g").await;
    let b = new_member(&coord, "g").await;
    // A has a short session; B a long one.
    let ja = spawn_join(&coord, join_req("g", &a, 500, 2_000));
    let jb = spawn_join(&coord, join_req("g", &b, 10_000, 2_000));
    let (ra, rb) = (ja.await.unwrap(), jb.await.unwrap());
    assert_eq!((ra.error, rb.error), (codes::NONE, codes::NONE));
    let generation = ra.generation_id;
    let cb = coord.clone();
    let bb = b.clone();
    let sb = tokio::spawn(async move { cb.sync(sync_req("g", &bb, generation, &[])).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    coord
        .sync(sync_req(
            "g",
            &a,
            generation,
            &[(a.as_str(), "1"), (b.as_str(), "2")],
        ))
        .await;
    assert_eq!(sb.await.unwrap().error, codes::NONE);
    // B heartbeats, A goes silent.
    let mut saw_rebalance = false;
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match coord.heartbeat("g", &b, generation) {
            codes::NONE => {}
            codes::REBALANCE_IN_PROGRESS => {
                saw_rebalance = true;
                break;
            }
            other => panic!("unexpected heartbeat error {other}"),
        }
    }
    assert!(saw_rebalance, "B never learned of the rebalance");
    let description = coord.describe("g").unwrap();
    assert_eq!(description.members.len(), 1);
    assert_eq!(
        coord.heartbeat("g", &a, generation),
        codes::UNKNOWN_MEMBER_ID
    );
    // B rejoins alone and leads the next generation.
    let rb = coord.join(join_req("g", &b, 10_000, 2_000)).await;
    assert_eq!(rb.error, codes::NONE);
    assert_eq!(rb.generation_id, generation + 1);
    assert_eq!(rb.leader, b);
    assert_eq!(rb.members.len(), 1);
}

#[tokio::test]
async fn member_missing_the_rebalance_timeout_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let a = new_member(&coord, "g").await;
    let b = new_member(&coord, "g").await;
    let ja = spawn_join(&coord, join_req("g", &a, 10_000, 800));
    let jb = spawn_join(&coord, join_req("g", &b, 10_000, 800));
    let generation = ja.await.unwrap().generation_id;
    jb.await.unwrap();
    // A rejoins (say, with new metadata); B heartbeats but never rejoins.
    let mut req = join_req("g", &a, 10_000, 800);
    req.protocols[0].1 = Bytes::from_static(b"new");
    let started = std::time::Instant::now();
    let ja = spawn_join(&coord, req);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        coord.heartbeat("g", &b, generation),
        codes::REBALANCE_IN_PROGRESS
    );
    let ra = ja.await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(ra.error, codes::NONE);
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(ra.members.len(), 1);
    assert_eq!(ra.members[0].metadata, Bytes::from_static(b"new"));
    assert_eq!(
        coord.heartbeat("g", &b, generation),
        codes::UNKNOWN_MEMBER_ID
    );
}

#[tokio::test]
async fn leave_triggers_rebalance_and_last_leave_empties() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let a = new_member(&coord, "g").await;
    let b = new_member(&coord, "g").await;
    let generation = join_and_sync(&coord, "g", &[&a, &b]).await;
    assert_eq!(coord.leave("g", &[(a.clone(), None)]), vec![codes::NONE]);
    assert_eq!(
        coord.heartbeat("g", &b, generation),
        codes::REBALANCE_IN_PROGRESS
    );
    let rb = coord.join(join_req("g", &b, 10_000, 2_000)).await;
    assert_eq!(rb.generation_id, generation + 1);
    assert_eq!(rb.leader, b, "leadership moves to a remaining member");
    assert_eq!(
        coord.leave("g", &[(b.clone(), None), ("nobody".into(), None)]),
        vec![codes::NONE, codes::UNKNOWN_MEMBER_ID]
    );
    let description = coord.describe("g").unwrap();
    assert_eq!(description.state, GroupState::Empty);
    assert_eq!(description.generation, generation + 2);
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(
        coord.leave("missing", &[(b.clone(), None)]),
        vec![codes::UNKNOWN_MEMBER_ID]
    );
}

#[tokio::test]
async fn leave_of_leader_fails_parked_follower_sync() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let a = new_member(&coord, "g").await;
    let b = new_member(&coord, "g").await;
    let ja = spawn_join(&coord, join_req("g", &a, 10_000, 2_000));
    let jb = spawn_join(&coord, join_req("g", &b, 10_000, 2_000));
    let generation = ja.await.unwrap().generation_id;
    jb.await.unwrap();
    let cb = coord.clone();
    let bb = b.clone();
    let sb = tokio::spawn(async move { cb.sync(sync_req("g", &bb, generation, &[])).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(coord.leave("g", &[(a.clone(), None)]), vec![codes::NONE]);
    assert_eq!(sb.await.unwrap().error, codes::REBALANCE_IN_PROGRESS);
}

#[tokio::test]
async fn member_that_never_syncs_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let a = new_member(&coord, "g").await;
    let b = new_member(&coord, "g").await;
    let ja = spawn_join(&coord, join_req("g", &a, 10_000, 300));
    let jb = spawn_join(&coord, join_req("g", &b, 10_000, 300));
    let generation = ja.await.unwrap().generation_id;
    jb.await.unwrap();
    // The leader syncs, B never does (but keeps heartbeating).
    let sa = coord
        .sync(sync_req("g", &a, generation, &[(a.as_str(), "1")]))
        .await;
    assert_eq!(sa.error, codes::NONE);
    let mut removed = false;
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if coord.describe("g").unwrap().members.len() == 1 {
            removed = true;
            break;
        }
        coord.heartbeat("g", &b, generation);
    }
    assert!(removed);
    assert_eq!(
        coord.heartbeat("g", &a, generation),
        codes::REBALANCE_IN_PROGRESS
    );
}
