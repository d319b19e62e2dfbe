//! The Kafka record batch (magic v2) header: the only place that knows its byte layout.
//!
//! Layout (all big-endian):
//!
//! | field                | type | at |
//! |----------------------|------|----|
//! | baseOffset           | i64  | 0  |
//! | batchLength          | i32  | 8  | (bytes after this field: total = 12 + batchLength)
//! | partitionLeaderEpoch | i32  | 12 |
//! | magic                | i8   | 16 | (must be 2)
//! | crc                  | u32  | 17 | (CRC-32C of bytes 21..end)
//! | attributes           | i16  | 21 |
//! | lastOffsetDelta      | i32  | 23 |
//! | baseTimestamp        | i64  | 27 |
//! | maxTimestamp         | i64  | 35 |
//! | producerId           | i64  | 43 |
//! | producerEpoch        | i16  | 51 |
//! | baseSequence         | i32  | 53 |
//! | recordCount          | i32  | 57 |
//!
//! followed by the (possibly compressed) records. The base offset and the partition leader
//! epoch are outside the CRC, so the broker can rewrite them without recomputing it. Magic is
//! at byte 16 in every message format version, which is how older formats are recognised.

use thiserror::Error;

/// Bytes of a v2 batch header (everything before the records).
pub const BATCH_HEADER_BYTES: usize = 61;
/// baseOffset + batchLength: the part of a batch not counted by batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest sane batchLength: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD) as i32;
/// The only supported magic.
pub const MAGIC_V2: i8 = 2;
/// First byte covered by the CRC.
pub const CRC_START: usize = 21;
/// Kafka's "no timestamp".
pub const NO_TIMESTAMP: i64 = -1;
/// Kafka's "no producer id".
pub const NO_PRODUCER_ID: i64 = -1;

const BASE_OFFSET_AT: usize = 0;
const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

/// attributes bits 0-2: compression codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Highest known codec (zstd).
pub const MAX_COMPRESSION_CODEC: u8 = 4;
/// attributes bit 3: timestamps are LogAppendTime.
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// attributes bit 4: part of a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// attributes bit 5: a control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
const INVALID_RECORD: i16 = 87;

/// Why a record batch (or a `records` field) was rejected. `position` is the byte offset of
/// the offending batch inside the buffer that was validated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// The `records` field holds no batch at all.
    #[error("the records field holds no record batch")]
    Empty,
    /// The buffer ends before the batch does (or before its header does).
    #[error("record batch at byte {position} is truncated: it needs {needed} bytes but only {available} remain")]
    Truncated {
        position: usize,
        needed: u64,
        available: usize,
    },
    /// batchLength is impossible (shorter than a header).
    #[error("record batch at byte {position} has an invalid batchLength {batch_length}: {reason}")]
    BadLength {
        position: usize,
        batch_length: i32,
        reason: &'static str,
    },
    /// The CRC-32C over bytes 21..end does not match the header.
    #[error("record batch at byte {position} is corrupt: CRC-32C in header is {expected:#010x}, computed {actual:#010x}")]
    CorruptMessage {
        position: usize,
        expected: u32,
        actual: u32,
    },
    /// Magic 0 or 1 (or anything but 2).
    #[error("record batch at byte {position} has magic {magic}; only magic 2 record batches (Kafka 0.11+) are supported")]
    UnsupportedMagic { position: usize, magic: i8 },
    /// The batch is larger than the configured maximum.
    #[error(
        "record batch at byte {position} is {size} bytes, more than the maximum of {max} bytes"
    )]
    TooLarge {
        position: usize,
        size: usize,
        max: usize,
    },
    /// The header is well-formed and intact but its fields contradict each other.
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidRecord { position: usize, reason: String },
}

impl BatchError {
    /// The Kafka error code to answer a produce request with.
    ///
    /// Truncated, bad length and CRC mismatch are CORRUPT_MESSAGE (2); an old magic is
    /// UNSUPPORTED_FOR_MESSAGE_FORMAT (43); a batch over the size limit is MESSAGE_TOO_LARGE (10),
    /// which makes the Java producer split the batch and retry; inconsistent fields and an empty
    /// `records` field are INVALID_RECORD (87).
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            BatchError::Truncated { .. }
            | BatchError::BadLength { .. }
            | BatchError::CorruptMessage { .. } => CORRUPT_MESSAGE,
            BatchError::UnsupportedMagic { .. } => UNSUPPORTED_FOR_MESSAGE_FORMAT,
            BatchError::TooLarge { .. } => MESSAGE_TOO_LARGE,
            BatchError::Empty | BatchError::InvalidRecord { .. } => INVALID_RECORD,
        }
    }
}

/// The decoded 61-byte header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(raw)
}

fn be_i32(bytes: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(raw)
}

fn be_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

impl BatchHeader {
    /// Decodes the header at the start of `bytes` (which needs at least 61 bytes). Checks
    /// nothing else: see [`BatchHeader::check_fields`] and [`validate_batches`].
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                position: 0,
                needed: BATCH_HEADER_BYTES as u64,
                available: bytes.len(),
            });
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, BASE_OFFSET_AT),
            batch_length: be_i32(bytes, LENGTH_AT),
            partition_leader_epoch: be_i32(bytes, LEADER_EPOCH_AT),
            magic: bytes[MAGIC_AT] as i8,
            crc: be_i32(bytes, CRC_AT) as u32,
            attributes: be_i16(bytes, ATTRIBUTES_AT),
            last_offset_delta: be_i32(bytes, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(bytes, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(bytes, MAX_TIMESTAMP_AT),
            producer_id: be_i64(bytes, PRODUCER_ID_AT),
            producer_epoch: be_i16(bytes, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(bytes, BASE_SEQUENCE_AT),
            record_count: be_i32(bytes, RECORD_COUNT_AT),
        })
    }

    /// Size of the whole batch in bytes (12 + batchLength). A negative batchLength counts as 0;
    /// only meaningful once [`BatchHeader::check_fields`] passed.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the batch's last record (base + lastOffsetDelta).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(self.last_offset_delta as i64)
    }

    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the timestamps are LogAppendTime (rather than CreateTime).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// Whether the batch comes from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Checks what the header alone can tell: magic 2, batchLength at least a header's worth,
    /// lastOffsetDelta >= 0, recordCount >= 0 and, for a non-empty batch, recordCount ==
    /// lastOffsetDelta + 1. Checks neither the CRC, nor that the bytes are there, nor the codec.
    /// `position` is only used in the error.
    pub fn check_fields(&self, position: usize) -> Result<(), BatchError> {
        if self.magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic {
                position,
                magic: self.magic,
            });
        }
        if self.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::BadLength {
                position,
                batch_length: self.batch_length,
                reason: "shorter than a record batch header",
            });
        }
        if self.last_offset_delta < 0 {
            return Err(BatchError::InvalidRecord {
                position,
                reason: format!("negative lastOffsetDelta {}", self.last_offset_delta),
            });
        }
        if self.record_count < 0 {
            return Err(BatchError::InvalidRecord {
                position,
                reason: format!("negative record count {}", self.record_count),
            });
        }
        if self.record_count > 0 && self.record_count as i64 != self.last_offset_delta as i64 + 1 {
            return Err(BatchError::InvalidRecord {
                position,
                reason: format!(
                    "record count {} does not match lastOffsetDelta {} (expected count = delta + 1)",
                    self.record_count, self.last_offset_delta
                ),
            });
        }
        Ok(())
    }
}

/// CRC-32C (Castagnoli) of bytes 21..end of a whole batch; `None` if `batch` is shorter than
/// a header.
pub fn batch_crc(batch: &[u8]) -> Option<u32> {
    (batch.len() >= BATCH_HEADER_BYTES).then(|| crc32c::crc32c(&batch[CRC_START..]))
}

/// Validates the single batch at the start of `rest` (which may be followed by more bytes)
/// and returns its header. `position` is where `rest` starts in the caller's buffer, for errors.
pub fn validate_batch_at(
    rest: &[u8],
    position: usize,
    max_batch_bytes: usize,
) -> Result<BatchHeader, BatchError> {
    if rest.len() <= MAGIC_AT {
        return Err(BatchError::Truncated {
            position,
            needed: (MAGIC_AT + 1) as u64,
            available: rest.len(),
        });
    }
    // Magic first: v0/v1 message sets have a different layout after byte 16.
    let magic = rest[MAGIC_AT] as i8;
    if magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic { position, magic });
    }
    let batch_length = be_i32(rest, LENGTH_AT);
    if batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::BadLength {
            position,
            batch_length,
            reason: "shorter than a record batch header",
        });
    }
    let total = LOG_OVERHEAD as u64 + batch_length as u64;
    if total > rest.len() as u64 {
        return Err(BatchError::Truncated {
            position,
            needed: total,
            available: rest.len(),
        });
    }
    let total = total as usize;
    if total > max_batch_bytes {
        return Err(BatchError::TooLarge {
            position,
            size: total,
            max: max_batch_bytes,
        });
    }
    let batch = &rest[..total];
    let header = BatchHeader::parse(batch).map_err(|_| BatchError::Truncated {
        position,
        needed: BATCH_HEADER_BYTES as u64,
        available: batch.len(),
    })?;
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if actual != header.crc {
        return Err(BatchError::CorruptMessage {
            position,
            expected: header.crc,
            actual,
        });
    }
    header.check_fields(position)?;
    if header.compression() > MAX_COMPRESSION_CODEC {
        return Err(BatchError::InvalidRecord {
            position,
            reason: format!("unknown compression codec {}", header.compression()),
        });
    }
    Ok(header)
}

/// Validates a produce request's `records` field: one or more concatenated v2 batches, every
/// one checked fully (magic, length, counts, CRC-32C, a known codec) and none larger than
/// `max_batch_bytes`.
/// Returns the headers in order. Never panics and never allocates based on a length field
/// (the result grows by one header per batch actually present).
pub fn validate_batches(
    records: &[u8],
    max_batch_bytes: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut headers = Vec::with_capacity(1);
    let mut position = 0;
    while position < records.len() {
        let header = validate_batch_at(&records[position..], position, max_batch_bytes)?;
        position += header.total_bytes();
        headers.push(header);
    }
    Ok(headers)
}

/// Rewrites the base offset (outside the CRC, so the batch stays valid).
///
/// # Panics
/// If `batch` is shorter than 8 bytes; callers pass whole validated batches.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch (outside the CRC, so the batch stays valid).
///
/// # Panics
/// If `batch` is shorter than 16 bytes; callers pass whole validated batches.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// **Test and bench utility** (not used by the broker itself): encodes a real, uncompressed v2
/// batch of `records` (key, value) with the given producer fields, every record stamped
/// `timestamp_ms` (so base and max timestamp are both `timestamp_ms`), no headers, attributes
/// 0, partition leader epoch 0, and a correct CRC-32C. An empty `records` gives a batch with
/// record count 0 and lastOffsetDelta 0. Use `producer_id = -1, producer_epoch = -1,
/// base_sequence = -1` for a non-idempotent producer.
pub fn build_test_batch(
    base_offset: i64,
    records: &[(&[u8], &[u8])],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    build_test_batch_with_attributes(
        base_offset,
        records,
        producer_id,
        producer_epoch,
        base_sequence,
        timestamp_ms,
        0,
    )
}

/// **Test and bench utility**: [`build_test_batch`] with explicit attributes (for example
/// [`ATTR_TRANSACTIONAL`] or [`ATTR_CONTROL`]). The records are always encoded uncompressed,
/// whatever the codec bits say.
pub fn build_test_batch_with_attributes(
    base_offset: i64,
    records: &[(&[u8], &[u8])],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    timestamp_ms: i64,
    attributes: i16,
) -> Vec<u8> {
    let payload_guess: usize = records.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + payload_guess);
    out.resize(BATCH_HEADER_BYTES, 0);
    let mut record = Vec::new();
    for (index, (key, value)) in records.iter().enumerate() {
        record.clear();
        record.push(0); // record attributes
        put_varint(&mut record, 0); // timestamp delta
        put_varint(&mut record, index as i64); // offset delta
        put_varint(&mut record, key.len() as i64);
        record.extend_from_slice(key);
        put_varint(&mut record, value.len() as i64);
        record.extend_from_slice(value);
        put_varint(&mut record, 0); // header count
        put_varint(&mut out, record.len() as i64);
        out.extend_from_slice(&record);
    }
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    let last_offset_delta = records.len().saturating_sub(1) as i32;
    out[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&0i32.to_be_bytes());
    out[MAGIC_AT] = MAGIC_V2 as u8;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    out[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&last_offset_delta.to_be_bytes());
    out[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    out[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
    out[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    out[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
    out[RECORD_COUNT_AT..RECORD_COUNT_AT + 4]
        .copy_from_slice(&(records.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 1 << 20;

    fn sample() -> Vec<u8> {
        build_test_batch(
            0,
            &[(b"k1", b"value-1"), (b"", b"v2"), (b"k3", b"")],
            42,
            3,
            7,
            1_000,
        )
    }

    #[test]
    fn valid_batch_round_trips() {
        let batch = sample();
        let headers = validate_batches(&batch, MAX).unwrap();
        assert_eq!(headers.len(), 1);
        let h = headers[0];
        assert_eq!(h.total_bytes(), batch.len());
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.magic, 2);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.last_offset(), 2);
        assert_eq!(h.producer_id, 42);
        assert_eq!(h.producer_epoch, 3);
        assert_eq!(h.base_sequence, 7);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_000);
        assert_eq!(h.compression(), 0);
        assert!(h.has_producer_id());
        assert!(!h.is_transactional() && !h.is_control() && !h.is_log_append_time());
        assert_eq!(batch_crc(&batch), Some(h.crc));
    }

    #[test]
    fn attribute_bits() {
        let attrs = ATTR_TRANSACTIONAL | ATTR_CONTROL | 4;
        let batch = build_test_batch_with_attributes(0, &[(b"", b"x")], -1, -1, -1, 5, attrs);
        let h = validate_batches(&batch, MAX).unwrap()[0];
        assert!(h.is_transactional() && h.is_control());
        assert_eq!(h.compression(), 4);
        assert!(!h.has_producer_id());
    }

    #[test]
    fn concatenated_batches_are_all_checked() {
        let mut buf = sample();
        let second = build_test_batch(0, &[(b"a", b"b")], -1, -1, -1, 9);
        buf.extend_from_slice(&second);
        let headers = validate_batches(&buf, MAX).unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].record_count, 1);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        let err = validate_batches(&buf, MAX).unwrap_err();
        assert!(
            matches!(err, BatchError::CorruptMessage { position, .. } if position == sample().len())
        );
    }

    #[test]
    fn empty_input_is_rejected() {
        assert_eq!(validate_batches(&[], MAX), Err(BatchError::Empty));
        assert_eq!(BatchError::Empty.kafka_error_code(), 87);
    }

    #[test]
    fn crc_mismatch_is_corrupt_message() {
        let mut batch = sample();
        batch[BATCH_HEADER_BYTES + 2] ^= 0x40;
        let err = validate_batches(&batch, MAX).unwrap_err();
        assert!(matches!(err, BatchError::CorruptMessage { .. }), "{err}");
        assert_eq!(err.kafka_error_code(), 2);
        assert!(err.to_string().contains("CRC-32C"));
    }

    #[test]
    fn old_magic_is_unsupported() {
        let mut batch = sample();
        batch[MAGIC_AT] = 1;
        let err = validate_batches(&batch, MAX).unwrap_err();
        assert_eq!(
            err,
            BatchError::UnsupportedMagic {
                position: 0,
                magic: 1
            }
        );
        assert_eq!(err.kafka_error_code(), 43);
    }

    #[test]
    fn truncated_and_bad_lengths_are_corrupt() {
        let batch = sample();
        for cut in [1, 16, 17, 60, 61, batch.len() - 1] {
            let err = validate_batches(&batch[..cut], MAX).unwrap_err();
            assert!(
                matches!(err, BatchError::Truncated { .. }),
                "cut {cut}: {err}"
            );
            assert_eq!(err.kafka_error_code(), 2);
        }
        let mut short = batch.clone();
        short[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&48i32.to_be_bytes());
        assert!(matches!(
            validate_batches(&short, MAX),
            Err(BatchError::BadLength { .. })
        ));
        let mut negative = batch.clone();
        negative[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            validate_batches(&negative, MAX),
            Err(BatchError::BadLength { .. })
        ));
        let mut huge = batch;
        huge[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            validate_batches(&huge, MAX),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn oversized_batch_is_too_large() {
        let batch = sample();
        let err = validate_batches(&batch, batch.len() - 1).unwrap_err();
        assert!(matches!(err, BatchError::TooLarge { .. }));
        assert_eq!(err.kafka_error_code(), 10);
        assert!(validate_batches(&batch, batch.len()).is_ok());
    }

    fn with_fields(lod: i32, count: i32) -> Vec<u8> {
        let mut batch = sample();
        batch[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&lod.to_be_bytes());
        batch[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    #[test]
    fn inconsistent_counts_are_invalid_record() {
        for (lod, count) in [(-1, 0), (2, -1), (2, 2), (0, 3)] {
            let err = validate_batches(&with_fields(lod, count), MAX).unwrap_err();
            assert!(
                matches!(err, BatchError::InvalidRecord { .. }),
                "{lod}/{count}: {err}"
            );
            assert_eq!(err.kafka_error_code(), 87);
        }
        let unknown_codec = build_test_batch_with_attributes(0, &[(b"", b"x")], -1, -1, -1, 5, 5);
        let err = validate_batches(&unknown_codec, MAX).unwrap_err();
        assert!(err.to_string().contains("compression codec 5"), "{err}");
        // An empty batch (count 0) is accepted with any non-negative delta.
        assert!(validate_batches(&with_fields(5, 0), MAX).is_ok());
        let empty = build_test_batch(0, &[], -1, -1, -1, 0);
        let h = validate_batches(&empty, MAX).unwrap()[0];
        assert_eq!((h.record_count, h.last_offset_delta), (0, 0));
    }

    #[test]
    fn parse_needs_a_whole_header() {
        assert!(BatchHeader::parse(&[0u8; 60]).is_err());
        assert!(BatchHeader::parse(&[0u8; 61]).is_ok());
    }

    #[test]
    fn rewriting_base_offset_and_epoch_keeps_crc_valid() {
        let mut batch = sample();
        set_base_offset(&mut batch, 123_456_789);
        set_partition_leader_epoch(&mut batch, 17);
        let h = validate_batches(&batch, MAX).unwrap()[0];
        assert_eq!(h.base_offset, 123_456_789);
        assert_eq!(h.partition_leader_epoch, 17);
        assert_eq!(h.last_offset(), 123_456_791);
    }

    #[test]
    fn varint_encoding_matches_kafka() {
        let mut out = Vec::new();
        put_varint(&mut out, 0);
        put_varint(&mut out, -1);
        put_varint(&mut out, 1);
        put_varint(&mut out, 300);
        assert_eq!(out, vec![0x00, 0x01, 0x02, 0xd8, 0x04]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = validate_batches(&bytes, MAX);
        }

        #[test]
        fn arbitrary_bytes_after_a_v2_prefix_never_panic(
            len in any::<i32>(),
            rest in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = vec![0u8; 17];
            bytes[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&len.to_be_bytes());
            bytes[MAGIC_AT] = 2;
            bytes.extend_from_slice(&rest);
            let _ = validate_batches(&bytes, MAX);
        }

        #[test]
        fn mutations_inside_crc_range_are_rejected(
            records in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..16), proptest::collection::vec(any::<u8>(), 0..64)),
                1..8),
            index in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let refs: Vec<(&[u8], &[u8])> =
                records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let mut batch = build_test_batch(0, &refs, 1, 0, 0, 77);
            prop_assert!(validate_batches(&batch, MAX).is_ok());
            let at = CRC_START + index.index(batch.len() - CRC_START);
            batch[at] ^= flip;
            prop_assert!(validate_batches(&batch, MAX).is_err());
        }

        #[test]
        fn arbitrary_mutations_never_panic(
            count in 0usize..5,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            append in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let pairs: Vec<(&[u8], &[u8])> = (0..count).map(|_| (&b"key"[..], &b"value"[..])).collect();
            let mut buf = build_test_batch(5, &pairs, -1, -1, -1, 1);
            buf.extend(build_test_batch(9, &pairs, 3, 1, 0, 2));
            for (at, value) in edits {
                let at = at.index(buf.len());
                buf[at] = value;
            }
            buf.truncate(cut.index(buf.len() + 1));
            buf.extend_from_slice(&append);
            if let Ok(headers) = validate_batches(&buf, MAX) {
                let total: usize = headers.iter().map(|h| h.total_bytes()).sum();
                prop_assert_eq!(total, buf.len());
            }
        }
    }
}
