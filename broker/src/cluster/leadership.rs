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
//! One envelope with the reserved group id `LEADERSHIP_GROUP_ID` carries the incarnation
//! followed by (group, term) pairs, the sender being the leader.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::replicas::GroupView;

/// The envelope group id that carries leadership claims instead of a Raft message.
pub const LEADERSHIP_GROUP_ID: u64 = u64::MAX;
/// Ticks between claims.
pub const CLAIM_EVERY_TICKS: u64 = 10;
/// Bytes per (group, term) pair.
const CLAIM_BYTES: usize = 16;

/// What one node says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub incarnation: u64,
    /// (group, term) of every group the sender leads.
    pub leading: Vec<(u64, u64)>,
}

/// Encodes the sender's incarnation and the groups it leads, with their terms.
pub fn encode(incarnation: u64, claims: &[(u64, u64)]) -> Bytes {
    let mut buffer = BytesMut::with_capacity(8 + claims.len() * CLAIM_BYTES);
    buffer.put_u64(incarnation);
    for (group, term) in claims {
        buffer.put_u64(*group);
        buffer.put_u64(*term);
    }
    buffer.freeze()
}

/// Decodes claims; `None` for a payload without an incarnation or with a torn pair.
pub fn decode(mut payload: &[u8]) -> Option<Claims> {
    if payload.len() < 8 || (payload.len() - 8) % CLAIM_BYTES != 0 {
        return None;
    }
    let incarnation = payload.get_u64();
    let mut leading = Vec::with_capacity(payload.len() / CLAIM_BYTES);
    while payload.has_remaining() {
        leading.push((payload.get_u64(), payload.get_u64()));
    }
    Some(Claims {
        incarnation,
        leading,
    })
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
        let bytes = encode(42, &claims);
        assert_eq!(
            decode(&bytes),
            Some(Claims {
                incarnation: 42,
                leading: claims
            })
        );
        assert_eq!(decode(&bytes[..20]), None);
        assert_eq!(decode(&[]), None);
        assert_eq!(
            decode(&encode(1, &[])).map(|claims| claims.leading),
            Some(vec![])
        );
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
