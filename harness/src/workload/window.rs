//! Per-partition windows for unthrottled producers: at most one batch outstanding per partition.
//!
//! An idempotent librdkafka producer (2.12) has at most one produce request in flight per
//! partition once batches hold five messages or more: it limits *messages* in flight to the
//! five *requests* the broker's de-duplication window allows. When a partition's next batch is
//! ready (full, or `linger.ms` expired) while its request is in flight, the client's broker
//! thread polls with no timeout until the answer comes. A producer that keeps its client queue
//! full (`rate: 0`) makes that the steady state, and on a machine it shares with the brokers it
//! takes a core from what it measures.
//!
//! So an unthrottled producer that picks its partitions (round-robin keys) hands the client at
//! most one batch (`batch.num.messages`) per partition until that batch is acknowledged or
//! failed. A full batch is sent at once; while it is in flight nothing of that partition is
//! queued, so nothing is ready and nothing spins. In flight per partition is what the client
//! allowed anyway: one request.

use std::sync::atomic::{AtomicU32, Ordering};

/// Messages handed to the client and not yet reported, per partition, and the limit.
#[derive(Debug)]
pub struct PartitionWindows {
    outstanding: Vec<AtomicU32>,
    limit_messages: u32,
}

impl PartitionWindows {
    /// `limit_messages` is at least 1.
    pub fn new(partitions: u32, limit_messages: u32) -> Self {
        Self {
            outstanding: (0..partitions).map(|_| AtomicU32::new(0)).collect(),
            limit_messages: limit_messages.max(1),
        }
    }

    /// Whether `partition` may take another message. A partition outside the topic as it was
    /// when the windows were made (the topic grew) has no window.
    pub fn has_room(&self, partition: i32) -> bool {
        self.slot(partition)
            .is_none_or(|outstanding| outstanding.load(Ordering::Acquire) < self.limit_messages)
    }

    /// A message for `partition` was handed to the client.
    pub fn take(&self, partition: i32) {
        if let Some(outstanding) = self.slot(partition) {
            outstanding.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A message for `partition` was acknowledged or failed.
    pub fn release(&self, partition: i32) {
        if let Some(outstanding) = self.slot(partition) {
            let _ = outstanding.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                count.checked_sub(1)
            });
        }
    }

    fn slot(&self, partition: i32) -> Option<&AtomicU32> {
        usize::try_from(partition)
            .ok()
            .and_then(|index| self.outstanding.get(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_takes_messages_up_to_its_limit_and_again_once_released() {
        let windows = PartitionWindows::new(2, 3);
        for _ in 0..3 {
            assert!(windows.has_room(1));
            windows.take(1);
        }
        assert!(!windows.has_room(1));
        assert!(windows.has_room(0), "each partition has its own window");
        windows.release(1);
        assert!(windows.has_room(1));
    }

    #[test]
    fn unknown_partitions_are_not_limited_and_releases_never_underflow() {
        let windows = PartitionWindows::new(1, 1);
        windows.take(5);
        windows.take(-1);
        assert!(windows.has_room(5));
        windows.release(0);
        windows.take(0);
        assert!(!windows.has_room(0));
    }
}
