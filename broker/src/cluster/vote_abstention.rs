//! A node that lost its disk stays out of elections for a while after it starts.
//!
//! Raft is safe only if a node votes at most once per term, which is why a vote is on disk
//! before it is sent. A wiped node has forgotten its votes: a vote request sent to it before
//! the wipe (and still in a peer's transport queue) could win a second vote in a term it
//! already voted in, and two leaders could then commit different entries at the same index.
//!
//! So a node that starts with an empty Raft state after having been a member abstains: for
//! [`abstention_window`] it grants no vote or pre-vote, takes no leadership transfer and does
//! not campaign. It still follows a leader and catches up meanwhile. The window outlasts every
//! vote request sent before the wipe: a peer's transport sheds what waited longer than its
//! queue age limit before a connection came up (see `transport::sender`), and a candidate
//! that got no answer has moved to a later term after two election timeouts.
//!
//! Whether a node was a member before is a marker object per node in the object store
//! (`nodes/<id>/member`), written on every start. A node starting empty without the marker
//! is a new cluster's first boot and elects at once. The memory object store is per process,
//! so with it a wiped node looks new (a test setting).
//!
//! What this does not cover: a vote request delayed in the network longer than the window,
//! and a wiped node that forgot a vote while the candidate it voted for is down or cut off
//! (another node can then be elected in that term with the wiped node's second vote). The
//! latter is two failures at once (a lost disk and an unreachable leader), beyond what three
//! Raft replicas survive.

use std::time::{Duration, Instant};

use bytes::Bytes;
use raft::eraftpb::MessageType;
use tracing::{info, warn};

use crate::snapshot::objects::{ObjectError, SnapshotObjects};

/// Counts starts that abstained (0 or 1 per process).
pub const METRIC_ABSTENTIONS: &str = "chronik_raft_vote_abstentions_total";

/// How long a wiped node abstains: longer than a peer's transport keeps an unsent message,
/// plus the longest randomized election timeout (raft-rs draws it below twice the setting).
pub fn abstention_window(
    election_timeout: Duration,
    transport_queue_max_age: Duration,
) -> Duration {
    transport_queue_max_age + 2 * election_timeout
}

/// The object whose presence says node `node_id` has been a member of this cluster.
pub fn member_marker_key(node_id: u64) -> String {
    format!("nodes/{node_id}/member")
}

/// Whether, and until when, this node abstains from elections.
#[derive(Debug, Default)]
pub struct VoteAbstention {
    until: Option<Instant>,
}

impl VoteAbstention {
    /// Abstains from `now` for `window`.
    pub fn starting(now: Instant, window: Duration) -> Self {
        metrics::counter!(METRIC_ABSTENTIONS).increment(1);
        VoteAbstention {
            until: Some(now + window),
        }
    }

    /// Whether the node abstains at `now`; the first call past the window ends it for good.
    pub fn is_active(&mut self, now: Instant) -> bool {
        match self.until {
            Some(until) if now < until => true,
            Some(_) => {
                self.until = None;
                info!("vote abstention over: this node takes part in elections again");
                false
            }
            None => false,
        }
    }

    /// Whether a peer's message may be stepped at `now`: while abstaining, vote and pre-vote
    /// requests and leadership transfers are dropped (their senders retry in a later term).
    pub fn admits(&mut self, message_type: MessageType, now: Instant) -> bool {
        let election = matches!(
            message_type,
            MessageType::MsgRequestVote
                | MessageType::MsgRequestPreVote
                | MessageType::MsgTimeoutNow
        );
        !(election && self.is_active(now))
    }
}

/// Decides at start-up whether this node abstains, and records it as a member. `pristine`:
/// the node starts with no Raft state at all. A store that cannot say whether the marker
/// exists counts as "was a member": abstaining costs seconds, a double vote costs safety.
pub async fn was_member_before(objects: &SnapshotObjects, node_id: u64, pristine: bool) -> bool {
    let key = member_marker_key(node_id);
    let was_member = if pristine {
        match objects.get(&key).await {
            Ok(_) => true,
            Err(ObjectError::NotFound { .. }) => false,
            Err(store_error) => {
                warn!(%store_error, "cannot tell whether this empty node was a member; abstaining");
                true
            }
        }
    } else {
        true
    };
    if let Err(store_error) = objects.put(&key, Bytes::from_static(b"member\n")).await {
        warn!(%store_error, "cannot record this node's membership in the object store");
    }
    was_member
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(3);

    #[test]
    fn only_election_messages_are_held_back_and_only_within_the_window() {
        let start = Instant::now();
        let mut abstention = VoteAbstention::starting(start, WINDOW);
        let inside = start + Duration::from_secs(1);
        for held in [
            MessageType::MsgRequestVote,
            MessageType::MsgRequestPreVote,
            MessageType::MsgTimeoutNow,
        ] {
            assert!(!abstention.admits(held, inside), "{held:?} admitted");
        }
        for passed in [
            MessageType::MsgAppend,
            MessageType::MsgHeartbeat,
            MessageType::MsgSnapshot,
            MessageType::MsgRequestVoteResponse,
        ] {
            assert!(abstention.admits(passed, inside), "{passed:?} held");
        }
        assert!(abstention.is_active(inside));
        let after = start + WINDOW;
        assert!(abstention.admits(MessageType::MsgRequestVote, after));
        assert!(
            !abstention.is_active(start),
            "an ended abstention stays ended"
        );
    }

    #[test]
    fn a_node_that_never_started_abstaining_admits_everything() {
        let mut abstention = VoteAbstention::default();
        assert!(abstention.admits(MessageType::MsgRequestVote, Instant::now()));
        assert!(!abstention.is_active(Instant::now()));
    }

    #[test]
    fn the_window_outlasts_queued_messages_and_a_randomized_election() {
        let window = abstention_window(Duration::from_millis(500), Duration::from_secs(2));
        assert_eq!(window, Duration::from_secs(3));
    }

    #[tokio::test]
    async fn an_empty_node_abstains_only_if_it_was_a_member_before() {
        let objects = SnapshotObjects::in_memory();
        assert!(
            !was_member_before(&objects, 2, true).await,
            "the first boot of a new cluster"
        );
        assert!(
            was_member_before(&objects, 2, true).await,
            "node 2 after a wipe"
        );
        assert!(
            !was_member_before(&objects, 3, true).await,
            "another node's marker says nothing of node 3"
        );
        let fresh = SnapshotObjects::in_memory();
        assert!(
            was_member_before(&fresh, 1, false).await,
            "a node with Raft state was a member"
        );
        assert!(
            was_member_before(&fresh, 1, true).await,
            "and its marker is written"
        );
    }
}
