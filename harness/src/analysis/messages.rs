//! Where each message ended up: lost, never delivered to a group, stored more than once.
//!
//! A message is *stored* at a position when a read found it there: a consumer's read or the
//! final read. An acknowledgement's offset is a claim, not a sighting (`offsets` checks the
//! claims), so a message whose acknowledgement names offset 5 while the log holds it at 7
//! only is an inconsistent offset, not a duplicate.
//!
//! - lost: acknowledged, and stored nowhere (no consumer read it, the final read did not find
//!   it).
//! - undelivered: acknowledged on a group's topic and never received by that group, counted
//!   per group (a message the final read found but a group missed is undelivered, not lost).
//! - duplicates: messages stored at more than one position (counted once per message).
//! - failed but stored: a delivery reported failed whose message was stored anyway (a timeout
//!   after the write): not owed, reported.
//! - unknown: a bench message this run did not send (a producer id or sequence number out of
//!   range, e.g. from an earlier run on the same topics); counted with the foreign records.

use super::positions::{Position, Topics};
use super::Examples;
use crate::workload::{FinalRead, MessageId, Records};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageFindings {
    pub lost: u64,
    /// Indexed like `Records::groups`.
    pub undelivered_by_group: Vec<u64>,
    pub duplicates: u64,
    pub failed_but_stored: u64,
    /// Consumed records that are not messages of this run.
    pub foreign_consumed: u64,
    /// Final-read records that are not messages of this run.
    pub foreign_stored: u64,
}

#[derive(Clone, Copy, Default)]
struct MessageState {
    acknowledged: bool,
    failed: bool,
    duplicated: bool,
    first_stored: Option<Position>,
}

/// Every message this run sent, by producer and sequence number.
struct MessageTable {
    states: Vec<Vec<MessageState>>,
}

impl MessageTable {
    fn new(records: &Records) -> Self {
        Self {
            states: records
                .producers
                .iter()
                .map(|producer| vec![MessageState::default(); producer.sent as usize])
                .collect(),
        }
    }

    /// `None` for a message this run did not send.
    fn get_mut(&mut self, message: MessageId) -> Option<&mut MessageState> {
        self.states
            .get_mut(message.producer as usize)?
            .get_mut(usize::try_from(message.sequence).ok()?)
    }
}

/// Records where each message was seen stored, and which were seen at two positions.
struct Sightings<'a> {
    table: MessageTable,
    duplicates: u64,
    examples: &'a mut Examples,
    topics: &'a Topics,
}

impl Sightings<'_> {
    /// Notes `message` stored at `position`; false for a message this run did not send.
    fn see(&mut self, message: MessageId, position: Position) -> bool {
        let Some(state) = self.table.get_mut(message) else {
            return false;
        };
        match state.first_stored {
            None => state.first_stored = Some(position),
            Some(first) if first != position && !state.duplicated => {
                state.duplicated = true;
                self.duplicates += 1;
                let topics = self.topics;
                self.examples.duplicates.note(|| {
                    format!(
                        "{message} stored at {} and {}",
                        topics.describe(first),
                        topics.describe(position)
                    )
                });
            }
            Some(_) => {}
        }
        true
    }
}

pub fn find(
    records: &Records,
    final_read: &FinalRead,
    topics: &Topics,
    examples: &mut Examples,
) -> MessageFindings {
    let mut findings = MessageFindings {
        undelivered_by_group: vec![0; records.groups.len()],
        ..MessageFindings::default()
    };
    let mut sightings = Sightings {
        table: MessageTable::new(records),
        duplicates: 0,
        examples: &mut *examples,
        topics,
    };
    let consumer_topics = topics.of_consumers(records);
    let producer_topics = topics.of_producers(records);

    // Who received what, per group: only producers writing to the group's topic.
    let mut delivered: Vec<Vec<Vec<bool>>> = records
        .groups
        .iter()
        .map(|group| {
            records
                .producers
                .iter()
                .map(|producer| {
                    let size = if producer.topic == group.topic {
                        producer.sent
                    } else {
                        0
                    };
                    vec![false; size as usize]
                })
                .collect()
        })
        .collect();

    for record in &records.consumed {
        let position = Position {
            topic: consumer_topics[record.consumer as usize],
            partition: record.partition,
            offset: record.offset,
        };
        let known = record
            .message
            .is_some_and(|message| sightings.see(message, position));
        if !known {
            findings.foreign_consumed += 1;
            continue;
        }
        let message = record.message.expect("known messages are messages");
        let group = records.consumers[record.consumer as usize].group as usize;
        if let Some(slot) =
            delivered[group][message.producer as usize].get_mut(message.sequence as usize)
        {
            *slot = true;
        }
    }
    for record in &final_read.records {
        let position = Position {
            topic: topics.of_final_read(record.topic),
            partition: record.partition,
            offset: record.offset,
        };
        let known = record
            .message
            .is_some_and(|message| sightings.see(message, position));
        if !known {
            findings.foreign_stored += 1;
        }
    }
    findings.duplicates = sightings.duplicates;
    let mut table = sightings.table;

    for failure in &records.failures {
        if let Some(state) = table.get_mut(failure.message) {
            state.failed = true;
        }
    }
    for acknowledgement in &records.acknowledgements {
        let message = acknowledgement.message;
        let Some(state) = table.get_mut(message) else {
            continue;
        };
        if std::mem::replace(&mut state.acknowledged, true) {
            continue;
        }
        let claimed = Position {
            topic: producer_topics[message.producer as usize],
            partition: acknowledgement.partition,
            offset: acknowledgement.offset,
        };
        if state.first_stored.is_none() {
            findings.lost += 1;
            examples.lost.note(|| {
                format!(
                    "{message} acknowledged at {}, read by no consumer and not in the final read",
                    topics.describe(claimed)
                )
            });
        }
        for (group_index, group) in records.groups.iter().enumerate() {
            let received = delivered[group_index][message.producer as usize]
                .get(message.sequence as usize)
                .copied();
            if received == Some(false) {
                findings.undelivered_by_group[group_index] += 1;
                examples.undelivered.note(|| {
                    format!(
                        "group {} never received {message} (acknowledged at {})",
                        group.name,
                        topics.describe(claimed)
                    )
                });
            }
        }
    }
    findings.failed_but_stored = table
        .states
        .iter()
        .flatten()
        .filter(|state| state.failed && !state.acknowledged && state.first_stored.is_some())
        .count() as u64;
    findings
}
