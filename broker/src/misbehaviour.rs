//! Deliberately broken behaviour, for testing the bench: a scenario run against a broker that
//! misbehaves must end with the verdict `correctness` (or `liveness` for a stall), or the bench
//! fools itself.
//!
//! The switch is the environment variable `CHRONIK_TEST_MISBEHAVIOUR` (or
//! `--test-misbehaviour`), one value, read once at start-up into [`Config`]. It is honoured
//! only in builds with `debug_assertions` (the build the tests and the bench's own checks
//! run); a release build ignores a valid value and says so in its log. A value this module
//! does not know stops the broker at start with an error naming the variable, in every build.
//! While a misbehaviour is active the broker logs a loud warning at start.
//!
//! The values, and exactly what they do on a partition's leader:
//!
//! - `ack-before-commit`: a produce (acks=1 or all) is queued for the Raft loop to propose
//!   without waiting for its outcome, and answered at once with the base offset the batches are
//!   predicted to get (see "Prediction" below). Nothing waits for replication, so when the
//!   leader is cut off from the majority the batches it acknowledged meanwhile are never
//!   committed: the new leader's log does not have them, and gives their offsets to other
//!   messages.
//! - `drop-batches`: every [`DROP_ONE_PRODUCE_IN`]th produce of a partition (counted per
//!   partition from the node's start; one produce is the record batches one request carries
//!   for the partition) is not proposed at all, and answered as stored, with the predicted base
//!   offset. The next produce that is stored gets that offset, so two acknowledgements name
//!   the same offset and one of the two messages is never consumed. An idempotent producer's
//!   next batch after a dropped one leaves a sequence gap, which apply refuses with
//!   OUT_OF_ORDER_SEQUENCE_NUMBER, as it would for a real loss.
//! - `fetch-beyond-high-watermark`: the leader keeps, per partition, the batches it proposed
//!   and has not applied yet (its uncommitted tail), with their base offsets rewritten to the
//!   predicted ones, and a fetch that reaches the high watermark gets that tail too; the
//!   response claims the tail's end as high watermark and last stable offset, so clients take
//!   the records as committed. The partition log itself is untouched (it only ever holds
//!   applied entries, identical on every replica), and produce is answered as usual, after
//!   commit. Without faults the tail is committed a moment later at the same offsets and
//!   nobody notices. When the leader is cut off from the majority its tail never commits: a
//!   consumer has read records that no replica keeps, the new leader gives their offsets to
//!   other messages (two reads disagree about an offset, or the consumer, whose position is
//!   beyond the new leader's log end, is reset and reads the offsets again), and producers
//!   retry the unanswered batches on the new leader, so the consumer reads them twice.
//!   The tail is bounded ([`MAX_UNCOMMITTED_BYTES_PER_PARTITION`]) and forgotten when the
//!   leader's term changes.
//! - `stall-after-ms=N`: from N milliseconds after the broker opened, produce requests are
//!   never answered (nothing is proposed; the connection stays open and stops reading once
//!   its in-flight limit is reached), and fetches return no records (waiting `max_wait_ms` as
//!   a long poll with nothing to return would). Everything else, `/health` included, keeps
//!   answering, so only a check of progress can tell.
//!
//! Prediction: the base offset a produce would get if it were applied next. Per partition, the
//! leader remembers the end of what it predicted last; a produce is predicted at the larger of
//! that and the log end offset, and moves the prediction on by its offsets. The prediction
//! starts again from the log end when the leader's term changes. It is exact for one producer
//! connection in a steady term; concurrent connections may be queued for the Raft loop in
//! another order than they were predicted, and de-duplicated retries make it run ahead.
//!
//! Deliberately left out: misbehaving followers, corrupt data, and anything on the Raft path
//! itself; the switches break what the broker promises to clients, where the bench looks.
//!
//! [`Config`]: crate::config::Config

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tracing::warn;

use crate::partition::Partition;
use crate::wire::record_batch::{self, BatchHeader};

/// The environment variable holding the switch.
pub const VARIABLE: &str = "CHRONIK_TEST_MISBEHAVIOUR";
/// `drop-batches` drops one produce of a partition in this many.
pub const DROP_ONE_PRODUCE_IN: u64 = 1000;
/// `fetch-beyond-high-watermark` keeps at most this many uncommitted bytes per partition;
/// batches proposed beyond it are not served early.
pub const MAX_UNCOMMITTED_BYTES_PER_PARTITION: usize = 64 * 1024 * 1024;

const STALL_AFTER_PREFIX: &str = "stall-after-ms=";

/// One deliberate fault (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    AckBeforeCommit,
    DropBatches,
    FetchBeyondHighWatermark,
    StallAfter { after_ms: u64 },
}

impl Misbehaviour {
    /// Parses the switch's value.
    pub fn parse(text: &str) -> Result<Misbehaviour, String> {
        let known = "expected one of ack-before-commit, drop-batches, \
                     fetch-beyond-high-watermark, stall-after-ms=N";
        match text.trim() {
            "ack-before-commit" => Ok(Misbehaviour::AckBeforeCommit),
            "drop-batches" => Ok(Misbehaviour::DropBatches),
            "fetch-beyond-high-watermark" => Ok(Misbehaviour::FetchBeyondHighWatermark),
            other => match other.strip_prefix(STALL_AFTER_PREFIX) {
                Some(milliseconds) => milliseconds
                    .parse()
                    .map(|after_ms| Misbehaviour::StallAfter { after_ms })
                    .map_err(|_| {
                        format!(
                            "{VARIABLE}: `{other}`: the stall delay must be a whole number of \
                             milliseconds, as in stall-after-ms=5000"
                        )
                    }),
                None => Err(format!("{VARIABLE}: unknown value `{other}`; {known}")),
            },
        }
    }
}

impl fmt::Display for Misbehaviour {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misbehaviour::AckBeforeCommit => formatter.write_str("ack-before-commit"),
            Misbehaviour::DropBatches => formatter.write_str("drop-batches"),
            Misbehaviour::FetchBeyondHighWatermark => {
                formatter.write_str("fetch-beyond-high-watermark")
            }
            Misbehaviour::StallAfter { after_ms } => {
                write!(formatter, "{STALL_AFTER_PREFIX}{after_ms}")
            }
        }
    }
}

/// The configured misbehaviour if this build honours it (debug builds only), after logging
/// what will happen. Called once, when the broker opens.
pub fn activate(configured: Option<Misbehaviour>) -> Option<Misbehaving> {
    let misbehaviour = configured?;
    if !cfg!(debug_assertions) {
        warn!(
            "{VARIABLE}={misbehaviour} is ignored: deliberate misbehaviour exists in debug \
             builds only, and this is a release build"
        );
        return None;
    }
    for _ in 0..3 {
        warn!(
            "!!! {VARIABLE}={misbehaviour}: THIS BROKER IS DELIBERATELY BROKEN, for testing the \
             bench; it breaks its guarantees on purpose; never use it for data !!!"
        );
    }
    Some(Misbehaving::new(misbehaviour))
}

/// What a produce to a partition this node leads does instead of the usual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProduceHook {
    /// Propose and answer after commit, as usual.
    AsUsual,
    /// Propose without waiting, answer at once with this base offset.
    AnswerBeforeCommit { base_offset: i64 },
    /// Do not propose; answer as stored at this base offset.
    Drop { base_offset: i64 },
}

/// The active misbehaviour and the little state it keeps.
pub struct Misbehaving {
    misbehaviour: Misbehaviour,
    started: Instant,
    partitions: Mutex<HashMap<u64, PartitionState>>,
}

/// Per partition (Raft group), on its leader.
#[derive(Default)]
struct PartitionState {
    /// The leader term the prediction and the tail belong to.
    term: u64,
    /// Where the next produce is predicted to start (see the module documentation).
    predicted_end_offset: i64,
    produces: u64,
    uncommitted: VecDeque<UncommittedBatches>,
    uncommitted_bytes: usize,
}

/// The batches of one produce, base offsets rewritten to their predicted offsets.
struct UncommittedBatches {
    /// The offset after the last record.
    end_offset: i64,
    bytes: Bytes,
}

impl Misbehaving {
    pub fn new(misbehaviour: Misbehaviour) -> Misbehaving {
        Misbehaving {
            misbehaviour,
            started: Instant::now(),
            partitions: Mutex::new(HashMap::new()),
        }
    }

    /// `stall-after-ms`: whether the stall has begun.
    pub fn is_stalled(&self) -> bool {
        match self.misbehaviour {
            Misbehaviour::StallAfter { after_ms } => {
                self.started.elapsed() >= Duration::from_millis(after_ms)
            }
            _ => false,
        }
    }

    /// Called for a validated produce on the partition's leader, in `term`, before it is
    /// proposed.
    pub fn before_propose(
        &self,
        partition: &Partition,
        term: u64,
        records: &Bytes,
        headers: &[BatchHeader],
    ) -> ProduceHook {
        let offsets: i64 = headers
            .iter()
            .map(|header| i64::from(header.last_offset_delta) + 1)
            .sum();
        let mut partitions = self.partitions.lock();
        let state = partitions.entry(partition.group_id).or_default();
        if state.term != term {
            *state = PartitionState {
                term,
                ..PartitionState::default()
            };
        }
        let base_offset = state.predicted_end_offset.max(partition.log_end_offset());
        state.produces += 1;
        match self.misbehaviour {
            Misbehaviour::DropBatches if state.produces % DROP_ONE_PRODUCE_IN == 0 => {
                // Not moved on: the next stored produce takes the same offset.
                state.predicted_end_offset = base_offset;
                return ProduceHook::Drop { base_offset };
            }
            Misbehaviour::FetchBeyondHighWatermark => {
                state.remember_uncommitted(base_offset, records, headers);
            }
            _ => {}
        }
        state.predicted_end_offset = base_offset + offsets;
        match self.misbehaviour {
            Misbehaviour::AckBeforeCommit => ProduceHook::AnswerBeforeCommit { base_offset },
            _ => ProduceHook::AsUsual,
        }
    }

    /// `fetch-beyond-high-watermark`: the end of the uncommitted tail the leader in `term`
    /// serves beyond `high_watermark`, if there is one. Forgets what is committed by now.
    pub fn uncommitted_end_offset(
        &self,
        partition: &Partition,
        term: u64,
        high_watermark: i64,
    ) -> Option<i64> {
        if self.misbehaviour != Misbehaviour::FetchBeyondHighWatermark {
            return None;
        }
        let mut partitions = self.partitions.lock();
        let state = partitions.get_mut(&partition.group_id)?;
        if state.term != term {
            return None;
        }
        while let Some(first) = state.uncommitted.front() {
            if first.end_offset > high_watermark {
                break;
            }
            state.uncommitted_bytes -= first.bytes.len();
            state.uncommitted.pop_front();
        }
        state
            .uncommitted
            .back()
            .map(|last| last.end_offset)
            .filter(|end| *end > high_watermark)
    }

    /// `fetch-beyond-high-watermark`: `committed` (whole batches read up to the high
    /// watermark) followed by the uncommitted batches from `from_offset` on, within
    /// `max_bytes` (at least one batch when nothing else was read).
    pub fn with_uncommitted(
        &self,
        partition: &Partition,
        term: u64,
        committed: Bytes,
        from_offset: i64,
        max_bytes: usize,
    ) -> Bytes {
        let partitions = self.partitions.lock();
        let Some(state) = partitions
            .get(&partition.group_id)
            .filter(|state| state.term == term)
        else {
            return committed;
        };
        let mut out = BytesMut::from(&committed[..]);
        for batches in &state.uncommitted {
            if batches.end_offset <= from_offset {
                continue;
            }
            if !out.is_empty() && out.len() + batches.bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&batches.bytes);
        }
        out.freeze()
    }
}

impl PartitionState {
    fn remember_uncommitted(&mut self, base_offset: i64, records: &Bytes, headers: &[BatchHeader]) {
        if self.uncommitted_bytes + records.len() > MAX_UNCOMMITTED_BYTES_PER_PARTITION {
            return;
        }
        let mut bytes = records.to_vec();
        let mut position = 0;
        let mut offset = base_offset;
        for header in headers {
            record_batch::set_base_offset(&mut bytes[position..], offset);
            position += header.total_bytes();
            offset += i64::from(header.last_offset_delta) + 1;
        }
        self.uncommitted_bytes += bytes.len();
        self.uncommitted.push_back(UncommittedBatches {
            end_offset: offset,
            bytes: bytes.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::storage::LogConfig;
    use clap::Parser;

    #[test]
    fn every_value_parses_and_prints_back() {
        for text in [
            "ack-before-commit",
            "drop-batches",
            "fetch-beyond-high-watermark",
            "stall-after-ms=2500",
        ] {
            let misbehaviour = Misbehaviour::parse(text).unwrap();
            assert_eq!(misbehaviour.to_string(), text);
        }
        assert_eq!(
            Misbehaviour::parse("stall-after-ms=0"),
            Ok(Misbehaviour::StallAfter { after_ms: 0 })
        );
    }

    #[test]
    fn an_unknown_value_is_an_error_naming_the_variable() {
        for text in ["", "drop-batch", "stall-after-ms=", "stall-after-ms=5s"] {
            let error = Misbehaviour::parse(text).unwrap_err();
            assert!(error.starts_with(VARIABLE), "{error}");
        }
        let error = Misbehaviour::parse("ack-early").unwrap_err();
        assert!(error.contains("`ack-early`") && error.contains("drop-batches"));
    }

    #[test]
    fn the_config_reads_the_switch_and_refuses_an_unknown_value() {
        let config = Config::try_parse_from(["chronik-server"]).unwrap();
        assert_eq!(config.test_misbehaviour, None);
        let config =
            Config::try_parse_from(["chronik-server", "--test-misbehaviour", "drop-batches"])
                .unwrap();
        assert_eq!(config.test_misbehaviour, Some(Misbehaviour::DropBatches));
        let error =
            Config::try_parse_from(["chronik-server", "--test-misbehaviour", "lose-everything"])
                .unwrap_err()
                .to_string();
        assert!(error.contains(VARIABLE), "{error}");
    }

    #[test]
    fn a_debug_build_activates_the_switch() {
        assert!(activate(None).is_none());
        let active = activate(Some(Misbehaviour::DropBatches));
        assert_eq!(active.is_some(), cfg!(debug_assertions));
    }

    fn partition(directory: &std::path::Path) -> Partition {
        Partition::open("topic", 0, 7, directory, LogConfig::default())
            .unwrap()
            .0
    }

    fn batch(records: usize) -> (Bytes, Vec<BatchHeader>) {
        let values: Vec<(&[u8], &[u8])> = vec![(b"k", b"v"); records];
        let bytes = Bytes::from(record_batch::build_test_batch(
            0, &values, -1, -1, -1, 1_000,
        ));
        let headers = record_batch::validate_batches(&bytes, usize::MAX).unwrap();
        (bytes, headers)
    }

    #[test]
    fn ack_before_commit_predicts_consecutive_offsets_and_starts_again_with_a_new_term() {
        let directory = tempfile::tempdir().unwrap();
        let partition = partition(directory.path());
        let misbehaving = Misbehaving::new(Misbehaviour::AckBeforeCommit);
        let (records, headers) = batch(3);
        let mut predicted = Vec::new();
        for _ in 0..3 {
            predicted.push(misbehaving.before_propose(&partition, 2, &records, &headers));
        }
        let at = |base_offset| ProduceHook::AnswerBeforeCommit { base_offset };
        assert_eq!(predicted, [at(0), at(3), at(6)]);
        // The log applied one batch meanwhile; a new term predicts from the log end.
        partition.apply(1, 3, &records).unwrap();
        assert_eq!(
            misbehaving.before_propose(&partition, 3, &records, &headers),
            at(3)
        );
    }

    #[test]
    fn drop_batches_drops_one_produce_in_a_thousand_and_reuses_its_offset() {
        let directory = tempfile::tempdir().unwrap();
        let partition = partition(directory.path());
        let misbehaving = Misbehaving::new(Misbehaviour::DropBatches);
        let (records, headers) = batch(1);
        let hooks: Vec<ProduceHook> = (0..2 * DROP_ONE_PRODUCE_IN)
            .map(|_| misbehaving.before_propose(&partition, 1, &records, &headers))
            .collect();
        let dropped: Vec<(usize, i64)> = hooks
            .iter()
            .enumerate()
            .filter_map(|(position, hook)| match hook {
                ProduceHook::Drop { base_offset } => Some((position, *base_offset)),
                _ => None,
            })
            .collect();
        assert_eq!(dropped, [(999, 999), (1999, 1998)]);
        assert_eq!(hooks[1000], ProduceHook::AsUsual);
    }

    #[test]
    fn the_uncommitted_tail_is_served_beyond_the_high_watermark_until_applied() {
        let directory = tempfile::tempdir().unwrap();
        let partition = partition(directory.path());
        let misbehaving = Misbehaving::new(Misbehaviour::FetchBeyondHighWatermark);
        let (records, headers) = batch(2);
        for _ in 0..2 {
            let hook = misbehaving.before_propose(&partition, 1, &records, &headers);
            assert_eq!(hook, ProduceHook::AsUsual);
        }
        assert_eq!(
            misbehaving.uncommitted_end_offset(&partition, 1, 0),
            Some(4)
        );
        let served = misbehaving.with_uncommitted(&partition, 1, Bytes::new(), 0, 1 << 20);
        let served_headers = record_batch::validate_batches(&served, usize::MAX).unwrap();
        let bases: Vec<i64> = served_headers.iter().map(|h| h.base_offset).collect();
        assert_eq!(bases, [0, 2]);
        // From offset 3: the batch holding it, whole.
        let served = misbehaving.with_uncommitted(&partition, 1, Bytes::new(), 3, 1 << 20);
        assert_eq!(served.len(), records.len());
        // Another term's tail is not served; applied batches are forgotten.
        assert_eq!(misbehaving.uncommitted_end_offset(&partition, 2, 0), None);
        assert_eq!(misbehaving.uncommitted_end_offset(&partition, 1, 4), None);
    }

    #[test]
    fn a_stall_begins_after_its_delay() {
        assert!(Misbehaving::new(Misbehaviour::StallAfter { after_ms: 0 }).is_stalled());
        assert!(!Misbehaving::new(Misbehaviour::StallAfter { after_ms: 60_000 }).is_stalled());
        assert!(!Misbehaving::new(Misbehaviour::DropBatches).is_stalled());
    }
}
