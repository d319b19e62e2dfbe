//! Inconsistent offsets: positions about which two sources disagree. Three sources name what a
//! position holds: an acknowledgement (the offset the broker reported for a message), a
//! consumer's read, and the final read. A position is inconsistent when any two of them name
//! different contents (two messages, or a message and a foreign record); it is counted once
//! however many sources disagree. Acknowledgements without an offset (acks=0) claim nothing.
//!
//! Two consumer reads can disagree too: a log truncated after one read and rewritten before
//! another.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::positions::{Position, Topics};
use super::Examples;
use crate::workload::{FinalRead, MessageId, Records};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    FinalRead,
    Acknowledgement,
    Consumer(u32),
}

impl Source {
    fn describe(self) -> String {
        match self {
            Source::FinalRead => "the final read".to_string(),
            Source::Acknowledgement => "an acknowledgement".to_string(),
            Source::Consumer(index) => format!("consumer {index}"),
        }
    }
}

struct Claim {
    content: Option<MessageId>,
    source: Source,
    contradicted: bool,
}

fn describe_content(content: Option<MessageId>) -> String {
    content.map_or_else(
        || "a foreign record".to_string(),
        |message| message.to_string(),
    )
}

/// The number of inconsistent positions.
pub fn find(
    records: &Records,
    final_read: &FinalRead,
    topics: &Topics,
    examples: &mut Examples,
) -> u64 {
    let mut claims: HashMap<Position, Claim> = HashMap::new();
    let mut inconsistent = 0u64;
    let mut claim = |position: Position, content: Option<MessageId>, source: Source| match claims
        .entry(position)
    {
        Entry::Vacant(vacant) => {
            vacant.insert(Claim {
                content,
                source,
                contradicted: false,
            });
        }
        Entry::Occupied(mut occupied) => {
            let first = occupied.get_mut();
            if first.content != content && !first.contradicted {
                first.contradicted = true;
                inconsistent += 1;
                examples.inconsistent_offsets.note(|| {
                    format!(
                        "{}: {} has {}, {} has {}",
                        topics.describe(position),
                        first.source.describe(),
                        describe_content(first.content),
                        source.describe(),
                        describe_content(content)
                    )
                });
            }
        }
    };

    for record in &final_read.records {
        let position = Position {
            topic: topics.of_final_read(record.topic),
            partition: record.partition,
            offset: record.offset,
        };
        claim(position, record.message, Source::FinalRead);
    }
    let producer_topics = topics.of_producers(records);
    for acknowledgement in &records.acknowledgements {
        let topic = producer_topics.get(acknowledgement.message.producer as usize);
        let Some(topic) = topic.filter(|_| acknowledgement.offset >= 0) else {
            continue;
        };
        let position = Position {
            topic: *topic,
            partition: acknowledgement.partition,
            offset: acknowledgement.offset,
        };
        claim(
            position,
            Some(acknowledgement.message),
            Source::Acknowledgement,
        );
    }
    let consumer_topics = topics.of_consumers(records);
    for record in &records.consumed {
        let position = Position {
            topic: consumer_topics[record.consumer as usize],
            partition: record.partition,
            offset: record.offset,
        };
        claim(position, record.message, Source::Consumer(record.consumer));
    }
    inconsistent
}
