//! Per consumer group: how many records it received and how many of them were redeliveries,
//! i.e. a position the group had already received (after a rebalance, a member resumes from
//! the last committed offset). Redelivery is allowed at-least-once behaviour, not a duplicate:
//! the log holds the message once; the group was handed it twice.

use std::collections::HashSet;

use super::positions::{Position, Topics};
use crate::workload::Records;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCounts {
    pub consumed: u64,
    pub redelivered: u64,
}

/// Indexed like `Records::groups`.
pub fn count(records: &Records, topics: &Topics) -> Vec<GroupCounts> {
    let consumer_topics = topics.of_consumers(records);
    let mut counts = vec![GroupCounts::default(); records.groups.len()];
    let mut received: Vec<HashSet<Position>> = vec![HashSet::new(); records.groups.len()];
    for record in &records.consumed {
        let group = records.consumers[record.consumer as usize].group as usize;
        let position = Position {
            topic: consumer_topics[record.consumer as usize],
            partition: record.partition,
            offset: record.offset,
        };
        counts[group].consumed += 1;
        if !received[group].insert(position) {
            counts[group].redelivered += 1;
        }
    }
    counts
}
