//! Durable offset tests: commit, restart, fetch; torn journal tails; compaction.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::codes;
use super::journal::JOURNAL_FILE;
use super::tests_membership::{join_req, new_member, open, settings};
use super::{CommitOffset, FetchedOffset, GroupCoordinator, GroupState, SyncRequest};

fn offset(topic: &str, partition: i32, offset: i64) -> CommitOffset {
    CommitOffset {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: 3,
        metadata: Some(format!("m{offset}")),
    }
}

fn fetched(partition: i32, offset: i64) -> FetchedOffset {
    FetchedOffset {
        partition,
        offset,
        leader_epoch: 3,
        metadata: format!("m{offset}"),
    }
}

fn none(partition: i32) -> FetchedOffset {
    FetchedOffset {
        partition,
        offset: -1,
        leader_epoch: -1,
        metadata: String::new(),
    }
}

#[tokio::test]
async fn offsets_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let coord = open(dir.path(), 0);
        let code = coord
            .commit_offsets("g", "", -1, vec![offset("t", 0, 10), offset("t", 1, 20)])
            .await;
        assert_eq!(code, codes::NONE);
        let code = coord
            .commit_offsets("g", "", -1, vec![offset("t", 0, 15)])
            .await;
        assert_eq!(code, codes::NONE);
        let code = coord
            .commit_offsets("other", "", -1, vec![offset("u", 0, 1)])
            .await;
        assert_eq!(code, codes::NONE);
        // No shutdown: the commit itself must have been durable.
    }
    assert!(dir.path().join("groups").join(JOURNAL_FILE).exists());
    let coord = open(dir.path(), 0);
    let requested = [
        ("t".to_string(), vec![0, 1, 2]),
        ("missing".to_string(), vec![0]),
    ];
    assert_eq!(
        coord.fetch_offsets("g", Some(&requested)),
        vec![
            (
                "t".to_string(),
                vec![fetched(0, 15), fetched(1, 20), none(2)]
            ),
            ("missing".to_string(), vec![none(0)]),
        ]
    );
    // Null topics: everything the group committed.
    assert_eq!(
        coord.fetch_offsets("g", None),
        vec![("t".to_string(), vec![fetched(0, 15), fetched(1, 20)])]
    );
    assert!(coord.fetch_offsets("nobody", None).is_empty());
    // Groups with offsets come back Empty.
    let listed: Vec<(String, GroupState)> = coord
        .list()
        .into_iter()
        .map(|g| (g.group_id, g.state))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("g".to_string(), GroupState::Empty),
            ("other".to_string(), GroupState::Empty)
        ]
    );
    assert_eq!(coord.describe("g").unwrap().state, GroupState::Empty);
    coord.shutdown().await;
}

#[tokio::test]
async fn member_commits_survive_reopen_and_members_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let member;
    {
        let coord = open(dir.path(), 0);
        member = new_member(&coord, "g").await;
        let joined = coord.join(join_req("g", &member, 10_000, 2_000)).await;
        let sync = SyncRequest {
            group_id: "g".into(),
            member_id: member.clone(),
            generation_id: joined.generation_id,
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        };
        assert_eq!(coord.sync(sync).await.error, codes::NONE);
        let code = coord
            .commit_offsets("g", &member, joined.generation_id, vec![offset("t", 0, 42)])
            .await;
        assert_eq!(code, codes::NONE);
        coord.shutdown().await;
    }
    let coord = open(dir.path(), 0);
    assert_eq!(
        coord.fetch_offsets("g", Some(&[("t".to_string(), vec![0])])),
        vec![("t".to_string(), vec![fetched(0, 42)])]
    );
    // The member is gone: its heartbeat tells it to rejoin from scratch.
    assert_eq!(coord.heartbeat("g", &member, 1), codes::UNKNOWN_MEMBER_ID);
    assert_eq!(
        coord
            .commit_offsets("g", &member, 1, vec![offset("t", 0, 43)])
            .await,
        codes::UNKNOWN_MEMBER_ID
    );
}

#[tokio::test]
async fn torn_journal_tail_is_cut_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let coord = open(dir.path(), 0);
        for i in 0..5 {
            let code = coord
                .commit_offsets("g", "", -1, vec![offset("t", 0, i)])
                .await;
            assert_eq!(code, codes::NONE);
        }
    }
    let path = dir.path().join("groups").join(JOURNAL_FILE);
    let clean_len = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of an append: a length, a checksum and half a payload.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&200u32.to_le_bytes()).unwrap();
    file.write_all(&0xdead_beefu32.to_le_bytes()).unwrap();
    file.write_all(b"{\"event\":\"OffsetsCommitted\",\"gro")
        .unwrap();
    drop(file);
    {
        let coord = open(dir.path(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), clean_len);
        assert_eq!(
            coord.fetch_offsets("g", None),
            vec![("t".to_string(), vec![fetched(0, 4)])]
        );
        // The journal takes appends again after the repair.
        let code = coord
            .commit_offsets("g", "", -1, vec![offset("t", 1, 7)])
            .await;
        assert_eq!(code, codes::NONE);
    }
    let coord = open(dir.path(), 0);
    assert_eq!(
        coord.fetch_offsets("g", None),
        vec![("t".to_string(), vec![fetched(0, 4), fetched(1, 7)])]
    );
}

#[tokio::test]
async fn compaction_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    {
        let coord = GroupCoordinator::open_with(dir.path(), settings(0), 4096).unwrap();
        for i in 0..400 {
            let batch = vec![offset("t", 0, i), offset("t", 1, 1000 + i)];
            assert_eq!(coord.commit_offsets("g", "", -1, batch).await, codes::NONE);
            if i % 100 == 0 {
                assert_eq!(
                    coord
                        .commit_offsets("h", "", -1, vec![offset("u", 5, i)])
                        .await,
                    codes::NONE
                );
            }
        }
        // Compaction runs in the background: wait for the journal to shrink.
        let mut shrunk = false;
        for _ in 0..100 {
            if coord.store().journal_len() < 8192 {
                shrunk = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            shrunk,
            "journal still {} bytes",
            coord.store().journal_len()
        );
        // An explicit compaction leaves exactly the snapshot.
        coord.store().compact().unwrap();
        assert!(
            coord.store().journal_len() < 1024,
            "{}",
            coord.store().journal_len()
        );
        assert_eq!(
            coord
                .commit_offsets("g", "", -1, vec![offset("t", 2, 5)])
                .await,
            codes::NONE
        );
    }
    let coord = open(dir.path(), 0);
    assert_eq!(
        coord.fetch_offsets("g", None),
        vec![(
            "t".to_string(),
            vec![fetched(0, 399), fetched(1, 1399), fetched(2, 5)]
        )]
    );
    assert_eq!(
        coord.fetch_offsets("h", None),
        vec![("u".to_string(), vec![fetched(5, 300)])]
    );
    assert!(!dir
        .path()
        .join("groups")
        .join("offsets.journal.tmp")
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_are_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let coord = open(dir.path(), 0);
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let coord: Arc<GroupCoordinator> = coord.clone();
                tokio::spawn(async move {
                    coord
                        .commit_offsets("g", "", -1, vec![offset("t", i, i as i64)])
                        .await
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.await.unwrap(), codes::NONE);
        }
    }
    let coord = open(dir.path(), 0);
    let all = coord.fetch_offsets("g", None);
    assert_eq!(all[0].1.len(), 64);
    assert_eq!(all[0].1[63], fetched(63, 63));
}

#[tokio::test]
async fn open_accepts_the_groups_directory_itself() {
    let dir = tempfile::tempdir().unwrap();
    let groups_dir = dir.path().join("groups");
    {
        let coord = open(&groups_dir, 0);
        assert_eq!(
            coord
                .commit_offsets("g", "", -1, vec![offset("t", 0, 1)])
                .await,
            codes::NONE
        );
    }
    // Opened through the data directory, the same journal is found.
    let coord = open(dir.path(), 0);
    assert_eq!(coord.fetch_offsets("g", None)[0].1, vec![fetched(0, 1)]);
    assert!(!groups_dir.join("groups").exists());
}
