//! Idempotent-producer state of one partition: for each producer id, its epoch and the last
//! few batches it wrote, so a retried batch is recognised and answered with its original
//! offset, and a gap in sequence numbers is refused.
//!
//! The state is derived from the log (every idempotent batch carries producer id, epoch and
//! base sequence), so at start-up it is rebuilt by scanning batch headers, from the start or
//! from the offset a saved copy covers ([`super::producer_snapshot`]).

use std::collections::{HashMap, VecDeque};

use crate::wire::record_batch::BatchHeader;

/// Batches remembered per producer: librdkafka and the Java client keep at most five in
/// flight, so a retry is always one of the last five.
pub const REMEMBERED_BATCHES_PER_PRODUCER: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WrittenBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
}

#[derive(Clone, Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<WrittenBatch>,
}

/// What to do with an incoming idempotent batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New and in order: append it.
    Append,
    /// Already written at `base_offset`: acknowledge without storing it again.
    Duplicate { base_offset: i64 },
    /// A gap or a sequence older than anything remembered.
    OutOfOrder { expected_sequence: i32 },
    /// An older epoch: this producer has been fenced by a newer instance.
    FencedEpoch { current_epoch: i16 },
}

#[derive(Clone, Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

fn last_sequence_of(header: &BatchHeader) -> i32 {
    let count = header.last_offset_delta.max(0);
    let last = header.base_sequence as i64 + count as i64;
    if last > i32::MAX as i64 {
        (last - i32::MAX as i64 - 1) as i32
    } else {
        last as i32
    }
}

impl ProducerStateTable {
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Unknown producer: a new one starts at sequence 0.
            return if header.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder {
                    expected_sequence: 0,
                }
            };
        };
        if header.producer_epoch < entry.epoch {
            return SequenceCheck::FencedEpoch {
                current_epoch: entry.epoch,
            };
        }
        if header.producer_epoch > entry.epoch {
            return if header.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder {
                    expected_sequence: 0,
                }
            };
        }
        let last_sequence = last_sequence_of(header);
        if let Some(written) = entry.batches.iter().find(|written| {
            written.first_sequence == header.base_sequence && written.last_sequence == last_sequence
        }) {
            return SequenceCheck::Duplicate {
                base_offset: written.base_offset,
            };
        }
        let expected_sequence = entry
            .batches
            .back()
            .map_or(0, |written| next_sequence(written.last_sequence));
        if header.base_sequence == expected_sequence {
            SequenceCheck::Append
        } else {
            SequenceCheck::OutOfOrder { expected_sequence }
        }
    }

    /// Records a batch that was written at `base_offset` (after `check` said Append, or while
    /// rebuilding from the log).
    pub fn record(&mut self, header: &BatchHeader, base_offset: i64) {
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == REMEMBERED_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(WrittenBatch {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence_of(header),
            base_offset,
        });
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// The table as bytes (big-endian): a u32 producer count, then per producer (in id order)
    /// its id (i64), epoch (i16), the number of remembered batches (u8) and each batch's first
    /// and last sequence (i32) and base offset (i64).
    pub fn encode(&self) -> Vec<u8> {
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        let mut out =
            Vec::with_capacity(4 + ids.len() * (11 + 16 * REMEMBERED_BATCHES_PER_PRODUCER));
        out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            let entry = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for batch in &entry.batches {
                out.extend_from_slice(&batch.first_sequence.to_be_bytes());
                out.extend_from_slice(&batch.last_sequence.to_be_bytes());
                out.extend_from_slice(&batch.base_offset.to_be_bytes());
            }
        }
        out
    }

    /// The table [`ProducerStateTable::encode`] wrote; `None` when `bytes` is not exactly one.
    pub fn decode(bytes: &[u8]) -> Option<ProducerStateTable> {
        let mut reader = Reader(bytes);
        let count = u32::from_be_bytes(reader.take()?);
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(reader.take()?);
            let epoch = i16::from_be_bytes(reader.take()?);
            let [remembered] = reader.take()?;
            if remembered as usize > REMEMBERED_BATCHES_PER_PRODUCER {
                return None;
            }
            let mut batches = VecDeque::with_capacity(remembered as usize);
            for _ in 0..remembered {
                batches.push_back(WrittenBatch {
                    first_sequence: i32::from_be_bytes(reader.take()?),
                    last_sequence: i32::from_be_bytes(reader.take()?),
                    base_offset: i64::from_be_bytes(reader.take()?),
                });
            }
            if producers
                .insert(id, ProducerEntry { epoch, batches })
                .is_some()
            {
                return None;
            }
        }
        reader
            .0
            .is_empty()
            .then_some(ProducerStateTable { producers })
    }
}

/// Reads fixed-size fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (field, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> BatchHeader {
        let bytes = crate::wire::record_batch::build_test_batch(
            0,
            &vec![(&b"k"[..], &b"v"[..]); records as usize],
            producer_id,
            epoch,
            base_sequence,
            1_000,
        );
        BatchHeader::parse(&bytes).unwrap()
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut table = ProducerStateTable::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(table.check(&first), SequenceCheck::Append);
        table.record(&first, 100);
        let second = header(7, 0, 3, 2);
        assert_eq!(table.check(&second), SequenceCheck::Append);
        table.record(&second, 103);
        assert_eq!(
            table.check(&first),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        assert_eq!(
            table.check(&second),
            SequenceCheck::Duplicate { base_offset: 103 }
        );
    }

    #[test]
    fn gaps_are_out_of_order_and_old_epochs_are_fenced() {
        let mut table = ProducerStateTable::default();
        assert_eq!(
            table.check(&header(7, 0, 5, 1)),
            SequenceCheck::OutOfOrder {
                expected_sequence: 0
            }
        );
        table.record(&header(7, 1, 0, 2), 0);
        assert_eq!(
            table.check(&header(7, 1, 3, 1)),
            SequenceCheck::OutOfOrder {
                expected_sequence: 2
            }
        );
        assert_eq!(
            table.check(&header(7, 0, 2, 1)),
            SequenceCheck::FencedEpoch { current_epoch: 1 }
        );
        assert_eq!(table.check(&header(7, 2, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn a_decoded_table_answers_as_the_original() {
        let mut table = ProducerStateTable::default();
        for index in 0..7 {
            table.record(&header(1, 0, index * 2, 2), 10 * index as i64);
        }
        table.record(&header(-5, 3, 0, 1), 99);
        let encoded = table.encode();
        let decoded = ProducerStateTable::decode(&encoded).unwrap();
        assert_eq!(decoded.encode(), encoded);
        for probe in [
            header(1, 0, 12, 2),
            header(1, 0, 14, 1),
            header(1, 0, 2, 2),
            header(-5, 3, 0, 1),
            header(-5, 2, 1, 1),
            header(8, 0, 0, 1),
        ] {
            assert_eq!(decoded.check(&probe), table.check(&probe), "{probe:?}");
        }
        assert!(ProducerStateTable::decode(&encoded[..encoded.len() - 1]).is_none());
        assert!(ProducerStateTable::decode(&[encoded.clone(), vec![0]].concat()).is_none());
        assert!(ProducerStateTable::decode(&[]).is_none());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut table = ProducerStateTable::default();
        for index in 0..7 {
            table.record(&header(1, 0, index, 1), index as i64);
        }
        assert_eq!(
            table.check(&header(1, 0, 6, 1)),
            SequenceCheck::Duplicate { base_offset: 6 }
        );
        assert_eq!(
            table.check(&header(1, 0, 1, 1)),
            SequenceCheck::OutOfOrder {
                expected_sequence: 7
            }
        );
    }
}
