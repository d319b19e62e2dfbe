//! When a consumer group has everything it is owed: every acknowledged message of its topic.
//!
//! An acknowledgement names its partition and offset, so a group is drained once, in every
//! partition, some member has read past the highest acknowledged offset. That is cheap to
//! track (a maximum per partition on each side) and exact when nothing is lost; when something
//! is lost, reading past its offset still counts, and the analysis finds the hole afterwards.
//! Acknowledgements without an offset (acks=0) cannot be placed, so for a topic that has them
//! the group must also have received at least as many records as were acknowledged.

/// What the acknowledgements of one topic owe each group that reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owed {
    /// The highest acknowledged offset per partition (-1: none).
    pub highest_offset_by_partition: Vec<i64>,
    pub acknowledged: u64,
    pub acknowledged_without_offset: u64,
}

impl Owed {
    pub fn add_producer(
        &mut self,
        highest_offset_by_partition: &[i64],
        acknowledged: u64,
        without_offset: u64,
    ) {
        merge_maximum(
            &mut self.highest_offset_by_partition,
            highest_offset_by_partition,
            -1,
        );
        self.acknowledged += acknowledged;
        self.acknowledged_without_offset += without_offset;
    }
}

/// Element-wise maximum of `from` into `into`, padding `into` with `absent`.
pub fn merge_maximum(into: &mut Vec<i64>, from: &[i64], absent: i64) {
    if into.len() < from.len() {
        into.resize(from.len(), absent);
    }
    for (slot, value) in into.iter_mut().zip(from) {
        *slot = (*slot).max(*value);
    }
}

/// Whether a group whose members together expect `next_offsets` (per partition) and have
/// received `consumed` records has everything `owed`.
pub fn is_drained(owed: &Owed, next_offsets: &[i64], consumed: u64) -> bool {
    let offsets_read =
        owed.highest_offset_by_partition
            .iter()
            .enumerate()
            .all(|(partition, highest)| {
                *highest < 0
                    || next_offsets
                        .get(partition)
                        .is_some_and(|next| next > highest)
            });
    offsets_read && (owed.acknowledged_without_offset == 0 || consumed >= owed.acknowledged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owed(highest: &[i64]) -> Owed {
        let mut owed = Owed::default();
        owed.add_producer(highest, 10, 0);
        owed
    }

    #[test]
    fn drained_once_every_partition_is_read_past_its_highest_acknowledgement() {
        let owed = owed(&[4, -1, 9]);
        assert!(!is_drained(&owed, &[], 0));
        assert!(!is_drained(&owed, &[5, 0, 9], 10));
        assert!(is_drained(&owed, &[5, 0, 10], 10));
        assert!(!is_drained(&owed, &[5], 20), "a partition never read");
    }

    #[test]
    fn producers_merge_by_maximum() {
        let mut owed = Owed::default();
        owed.add_producer(&[3, 8], 2, 0);
        owed.add_producer(&[5, -1, 2], 3, 1);
        assert_eq!(owed.highest_offset_by_partition, [5, 8, 2]);
        assert_eq!(owed.acknowledged, 5);
        assert_eq!(owed.acknowledged_without_offset, 1);
    }

    #[test]
    fn acknowledgements_without_offsets_need_as_many_records() {
        let mut owed = Owed::default();
        owed.add_producer(&[], 100, 100);
        assert!(!is_drained(&owed, &[50, 50], 99));
        assert!(is_drained(&owed, &[50, 50], 100));
    }

    #[test]
    fn nothing_owed_is_drained_at_once() {
        assert!(is_drained(&Owed::default(), &[], 0));
    }
}
