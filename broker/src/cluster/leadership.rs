//! Who leads the groups a node does not hold. Every node tells every peer, twice a second,
//! which groups it leads and in which term; a node that holds no replica of a group answers
//! Metadata for it from these claims (the highest term wins), so clients find a partition's
//! leader whichever broker they ask. Claims travel on the Raft transport as one envelope with
//! the reserved group id `LEADERSHIP_GROUP_ID`: a list of (group, term) pairs, the sender
//! being the leader.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::replicas::GroupView;

/// The envelope group id that carries leadership claims instead of a Raft message.
pub const LEADERSHIP_GROUP_ID: u64 = u64::MAX;
/// Ticks between claims.
pub const CLAIM_EVERY_TICKS: u64 = 10;
/// Bytes per (group, term) pair.
const CLAIM_BYTES: usize = 16;

/// Encodes the groups a node leads, with their terms.
pub fn encode(claims: &[(u64, u64)]) -> Bytes {
    let mut buffer = BytesMut::with_capacity(claims.len() * CLAIM_BYTES);
    for (group, term) in claims {
        buffer.put_u64(*group);
        buffer.put_u64(*term);
    }
    buffer.freeze()
}

/// Decodes claims; `None` for a payload that is not a whole number of pairs.
pub fn decode(mut payload: &[u8]) -> Option<Vec<(u64, u64)>> {
    if payload.len() % CLAIM_BYTES != 0 {
        return None;
    }
    let mut claims = Vec::with_capacity(payload.len() / CLAIM_BYTES);
    while payload.has_remaining() {
        claims.push((payload.get_u64(), payload.get_u64()));
    }
    Some(claims)
}

/// The view of a group this node does not hold after `leader` claims it in `term`: taken when
/// the term is at least the one known.
pub fn apply_claim(view: &mut GroupView, leader: u64, term: u64) {
    if term >= view.term {
        *view = GroupView {
            leader,
            term,
            is_leader: false,
            in_sync: Vec::new(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_and_a_torn_payload_is_refused() {
        let claims = vec![(3, 7), (u64::MAX - 1, 1)];
        let bytes = encode(&claims);
        assert_eq!(decode(&bytes), Some(claims));
        assert_eq!(decode(&bytes[..20]), None);
        assert_eq!(decode(&[]), Some(Vec::new()));
    }

    #[test]
    fn an_older_term_does_not_replace_a_newer_claim() {
        let mut view = GroupView::default();
        apply_claim(&mut view, 2, 5);
        assert_eq!((view.leader, view.term), (2, 5));
        apply_claim(&mut view, 3, 4);
        assert_eq!((view.leader, view.term), (2, 5), "a stale claim");
        apply_claim(&mut view, 3, 6);
        assert_eq!((view.leader, view.term), (3, 6));
    }
}
