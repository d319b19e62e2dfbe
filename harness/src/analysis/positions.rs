//! Where things are: one topic numbering for the workload's records and the final read (each
//! has its own table of names), and positions (topic, partition, offset) on it.

use std::collections::HashMap;

use crate::workload::{FinalRead, Records, TopicIndex};

/// A place in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// An index into `Topics::names`.
    pub topic: u32,
    pub partition: i32,
    pub offset: i64,
}

/// Every topic name of a run, numbered once.
#[derive(Debug, Default)]
pub struct Topics {
    pub names: Vec<String>,
    /// `Records::topics` index to ours.
    from_records: Vec<u32>,
    /// `FinalRead::topics` index to ours.
    from_final_read: Vec<u32>,
}

impl Topics {
    pub fn new(records: &Records, final_read: &FinalRead) -> Self {
        let mut topics = Topics::default();
        let mut numbers: HashMap<String, u32> = HashMap::new();
        let mut number = |names: &mut Vec<String>, name: &str| {
            *numbers.entry(name.to_string()).or_insert_with(|| {
                names.push(name.to_string());
                (names.len() - 1) as u32
            })
        };
        for name in &records.topics {
            let index = number(&mut topics.names, name);
            topics.from_records.push(index);
        }
        for name in &final_read.topics {
            let index = number(&mut topics.names, name);
            topics.from_final_read.push(index);
        }
        topics
    }

    pub fn of_records(&self, topic: TopicIndex) -> u32 {
        self.from_records[topic as usize]
    }

    pub fn of_final_read(&self, topic: TopicIndex) -> u32 {
        self.from_final_read[topic as usize]
    }

    /// Our topic of each producer, by producer id.
    pub fn of_producers(&self, records: &Records) -> Vec<u32> {
        records
            .producers
            .iter()
            .map(|producer| self.of_records(producer.topic))
            .collect()
    }

    /// Our topic of each consumer instance (its group's).
    pub fn of_consumers(&self, records: &Records) -> Vec<u32> {
        records
            .consumers
            .iter()
            .map(|consumer| self.of_records(records.groups[consumer.group as usize].topic))
            .collect()
    }

    /// `events/0@17`
    pub fn describe(&self, position: Position) -> String {
        format!(
            "{}/{}@{}",
            self.names[position.topic as usize], position.partition, position.offset
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_map_to_one_numbering() {
        let records = Records {
            topics: vec!["b".into(), "a".into()],
            ..Records::default()
        };
        let final_read = FinalRead {
            topics: vec!["a".into(), "c".into(), "b".into()],
            ..FinalRead::default()
        };
        let topics = Topics::new(&records, &final_read);
        assert_eq!(topics.names, ["b", "a", "c"]);
        assert_eq!(topics.of_records(0), 0);
        assert_eq!(topics.of_final_read(0), 1);
        assert_eq!(topics.of_final_read(2), 0);
        let position = Position {
            topic: 2,
            partition: 3,
            offset: 17,
        };
        assert_eq!(topics.describe(position), "c/3@17");
    }
}
