//! What nodes tell each other twice a second, besides Raft: which groups each leads, and
//! which incarnation of the node process is speaking.
//!
//! - Leadership: a node that holds no replica of a group answers Metadata for it from these
//!   claims (the highest term wins), so clients find a partition's leader whichever broker
//!   they ask.
//! - Incarnation: a random number drawn when the node process starts. When a peer's
//!   incarnation changes, the peer restarted and may have lost its disk: every leader forgets
//!   what it believed that peer holds (`MultiRaft::forget_progress`) and finds out again, so a
//!   wiped node is sent its log from the start instead of being assumed to hold it.
//!
//! - In-sync replicas: each claim carries the leader's in-sync set, so followers and nodes
//!   without a replica report the same in-sync replicas as the leader (at most half a second
//!   old) instead of every replica.
//!
//! One envelope with the reserved group id `LEADERSHIP_GROUP_ID` carries the incarnation
//! (u64) followed by one claim per led group: group (u64), term (u64), the number of in-sync
//! replicas (u32) and their node ids (u32 each); the sender is the leader.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::replicas::GroupView;

/// The envelope group id that carries leadership claims instead of a Raft message.
pub const LEADERSHIP_GROUP_ID: u64 = u64::MAX;
/// Ticks between claims.
pub const CLAIM_EVERY_TICKS: u64 = 10;
/// Bytes of a claim before its in-sync node ids.
const CLAIM_HEADER_BYTES: usize = 20;
/// The most in-sync replicas a claim may list (more is a malformed payload).
const MAX_IN_SYNC: usize = 1024;

/// One led group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub group: u64,
    pub term: u64,
    pub in_sync: Vec<i32>,
}

/// What one node says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub incarnation: u64,
    /// Every group the sender leads.
    pub leading: Vec<Claim>,
}

/// Encodes the sender's incarnation and the groups it leads.
pub fn encode(incarnation: u64, claims: &[Claim]) -> Bytes {
    let mut buffer = BytesMut::with_capacity(8 + claims.len() * (CLAIM_HEADER_BYTES + 12));
    buffer.put_u64(incarnation);
    for claim in claims {
        buffer.put_u64(claim.group);
        buffer.put_u64(claim.term);
        buffer.put_u32(claim.in_sync.len() as u32);
        for node in &claim.in_sync {
            buffer.put_u32(*node as u32);
        }
    }
    buffer.freeze()
}

/// Decodes claims; `None` for a payload without an incarnation or with a torn claim.
pub fn decode(mut payload: &[u8]) -> Option<Claims> {
    if payload.len() < 8 {
        return None;
    }
    let incarnation = payload.get_u64();
    let mut leading = Vec::new();
    while payload.has_remaining() {
        if payload.remaining() < CLAIM_HEADER_BYTES {
            return None;
        }
        let group = payload.get_u64();
        let term = payload.get_u64();
        let count = payload.get_u32() as usize;
        if count > MAX_IN_SYNC || payload.remaining() < count * 4 {
            return None;
        }
        let in_sync = (0..count).map(|_| payload.get_u32() as i32).collect();
        leading.push(Claim {
            group,
            term,
            in_sync,
        });
    }
    Some(Claims {
        incarnation,
        leading,
    })
}

/// The view of a group this node does not hold after `leader` claims it: taken when the term
/// is at least the one known.
pub fn apply_claim(view: &mut GroupView, leader: u64, claim: &Claim) {
    if claim.term >= view.term {
        *view = GroupView {
            leader,
            last_leader: leader,
            term: claim.term,
            is_leader: false,
            in_sync: claim.in_sync.clone(),
            applied_own_term: false,
        };
    }
}

/// A follower's view after its leader's claim: the in-sync set, when the claim is from the
/// leader and term the follower knows.
pub fn apply_claim_as_follower(view: &mut GroupView, leader: u64, claim: &Claim) {
    if !view.is_leader && view.leader == leader && view.term == claim.term {
        view.in_sync = claim.in_sync.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(group: u64, term: u64, in_sync: &[i32]) -> Claim {
        Claim {
            group,
            term,
            in_sync: in_sync.to_vec(),
        }
    }

    #[test]
    fn claims_round_trip_and_a_torn_payload_is_refused() {
        let claims = vec![claim(3, 7, &[1, 2, 3]), claim(u64::MAX - 1, 1, &[])];
        let bytes = encode(42, &claims);
        assert_eq!(
            decode(&bytes),
            Some(Claims {
                incarnation: 42,
                leading: claims
            })
        );
        for cut in [7, 20, 30, bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            decode(&encode(1, &[])).map(|claims| claims.leading),
            Some(vec![])
        );
        let mut huge = BytesMut::new();
        huge.put_u64(1);
        huge.put_u64(3);
        huge.put_u64(7);
        huge.put_u32(u32::MAX);
        assert_eq!(decode(&huge), None, "a count the payload cannot hold");
    }

    #[test]
    fn an_older_term_does_not_replace_a_newer_claim() {
        let mut view = GroupView::default();
        apply_claim(&mut view, 2, &claim(3, 5, &[2, 3]));
        assert_eq!((view.leader, view.term), (2, 5));
        assert_eq!(view.in_sync, [2, 3]);
        apply_claim(&mut view, 3, &claim(3, 4, &[3]));
        assert_eq!((view.leader, view.term), (2, 5), "a stale claim");
        apply_claim(&mut view, 3, &claim(3, 6, &[3, 1]));
        assert_eq!((view.leader, view.term), (3, 6));
    }

    #[test]
    fn a_follower_takes_the_in_sync_set_only_from_its_own_leader_and_term() {
        let mut view = GroupView {
            leader: 2,
            last_leader: 2,
            term: 5,
            is_leader: false,
            in_sync: Vec::new(),
            applied_own_term: false,
        };
        apply_claim_as_follower(&mut view, 3, &claim(3, 5, &[3]));
        assert!(view.in_sync.is_empty(), "not its leader");
        apply_claim_as_follower(&mut view, 2, &claim(3, 4, &[2]));
        assert!(view.in_sync.is_empty(), "an older term");
        apply_claim_as_follower(&mut view, 2, &claim(3, 5, &[2, 1]));
        assert_eq!(view.in_sync, [2, 1]);
    }
}
