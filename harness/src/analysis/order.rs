//! Reordering, judged on the final read (the log as it is): within each partition, in offset
//! order, a message whose sequence number is lower than that of an earlier message of the same
//! producer is reordered. Each such message counts once. A second copy of a message already
//! seen in the partition is a duplicate (see `messages`), not a reordering, so a retried batch
//! written twice (`0 1 2 1 2`) counts two duplicates and no reordering, while `0 2 1` counts
//! one reordered message.

use std::collections::{HashMap, HashSet};

use super::positions::Topics;
use super::Examples;
use crate::workload::{FinalRead, MessageId, ReadRecord};

/// The number of reordered messages.
pub fn find(final_read: &FinalRead, topics: &Topics, examples: &mut Examples) -> u64 {
    let mut records: Vec<&ReadRecord> = final_read.records.iter().collect();
    records.sort_by_key(|record| (record.topic, record.partition, record.offset));
    let mut reordered = 0;
    for partition in
        records.chunk_by(|one, other| (one.topic, one.partition) == (other.topic, other.partition))
    {
        let mut highest_sequence: HashMap<u32, u64> = HashMap::new();
        let mut seen: HashSet<MessageId> = HashSet::new();
        for record in partition {
            let Some(message) = record.message else {
                continue;
            };
            if !seen.insert(message) {
                continue;
            }
            match highest_sequence.get_mut(&message.producer) {
                Some(highest) if message.sequence < *highest => {
                    reordered += 1;
                    let earlier = MessageId {
                        producer: message.producer,
                        sequence: *highest,
                    };
                    examples.reordered.note(|| {
                        format!(
                            "{}/{}@{}: {message} after {earlier}",
                            topics.names[topics.of_final_read(record.topic) as usize],
                            record.partition,
                            record.offset
                        )
                    });
                }
                Some(highest) => *highest = message.sequence,
                None => {
                    highest_sequence.insert(message.producer, message.sequence);
                }
            }
        }
    }
    reordered
}
