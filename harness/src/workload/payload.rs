//! The bench's message format. Every message starts with a 16-byte header, big-endian:
//!
//! ```text
//! bytes 0..4    MAGIC ("CHRB")
//! bytes 4..8    producer id (u32, unique over the run's producer instances)
//! bytes 8..16   sequence number (u64, from 0 per producer)
//! bytes 16..    filler up to the scenario's message size
//! ```
//!
//! The filler is seeded letters from a 16-letter alphabet, so compressed data shrinks to about
//! half (neither incompressible noise nor a run of zeros). Consecutive messages take
//! consecutive slices of a [`FILLER_POOL_BYTES`] pool, so no two messages within that distance
//! share their filler: a compressor that looks across messages (a producer's batch, a
//! snapshot's chunk) finds no more to remove than in real data. Anything a reader finds that
//! does not start with the magic is not a bench message ("foreign").

use crate::scenario::MIN_MESSAGE_SIZE_BYTES;

/// The first four bytes of every bench message.
pub const MAGIC: [u8; 4] = *b"CHRB";
/// Magic, producer id and sequence number.
pub const HEADER_BYTES: usize = 16;

const _: () = assert!(HEADER_BYTES as u32 == MIN_MESSAGE_SIZE_BYTES);

/// Which message: the producer instance and its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    pub producer: u32,
    pub sequence: u64,
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "p{}#{}", self.producer, self.sequence)
    }
}

/// Filler the messages of one producer cycle through: larger than the window of the
/// compressors at their usual levels (zstd's is 2 MiB at its default level 3).
pub const FILLER_POOL_BYTES: usize = 4 * 1024 * 1024;

/// One producer's messages: a buffer reused for every message, and the filler pool.
pub struct PayloadBuffer {
    bytes: Vec<u8>,
    /// [`FILLER_POOL_BYTES`] letters, plus one filler's length so every slice is in bounds.
    pool: Vec<u8>,
}

impl PayloadBuffer {
    /// `size_bytes` is at least `HEADER_BYTES`.
    pub fn new(producer: u32, size_bytes: usize, rng: &mut fastrand::Rng) -> Self {
        assert!(
            size_bytes >= HEADER_BYTES,
            "a message holds at least its header"
        );
        let filler_bytes = size_bytes - HEADER_BYTES;
        let pool_bytes = FILLER_POOL_BYTES + filler_bytes;
        // Eight letters from `a` to `p` per random word: each byte's low four bits plus `a`
        // (no carry between bytes), so even a debug build fills the pool in milliseconds.
        let mut pool = Vec::with_capacity(pool_bytes + 8);
        while pool.len() < pool_bytes {
            let letters = (rng.u64(..) & 0x0f0f_0f0f_0f0f_0f0f) + 0x6161_6161_6161_6161;
            pool.extend_from_slice(&letters.to_le_bytes());
        }
        pool.truncate(pool_bytes);
        let mut bytes = vec![0; size_bytes];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[4..8].copy_from_slice(&producer.to_be_bytes());
        Self { bytes, pool }
    }

    /// The message with this sequence number.
    pub fn message(&mut self, sequence: u64) -> &[u8] {
        let filler_bytes = self.bytes.len() - HEADER_BYTES;
        let start = (sequence as usize).wrapping_mul(filler_bytes) % FILLER_POOL_BYTES;
        self.bytes[8..16].copy_from_slice(&sequence.to_be_bytes());
        self.bytes[HEADER_BYTES..].copy_from_slice(&self.pool[start..start + filler_bytes]);
        &self.bytes
    }
}

/// The bench message a payload carries, or `None` for anything else.
pub fn decode(payload: Option<&[u8]>) -> Option<MessageId> {
    let payload = payload?;
    if payload.len() < HEADER_BYTES || payload[..4] != MAGIC {
        return None;
    }
    let producer = u32::from_be_bytes(payload[4..8].try_into().ok()?);
    let sequence = u64::from_be_bytes(payload[8..16].try_into().ok()?);
    Some(MessageId { producer, sequence })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_decodes_to_its_producer_and_sequence() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut buffer = PayloadBuffer::new(7, 100, &mut rng);
        let message = buffer.message(123_456_789_012);
        assert_eq!(message.len(), 100);
        assert_eq!(
            decode(Some(message)),
            Some(MessageId {
                producer: 7,
                sequence: 123_456_789_012
            })
        );
        assert_eq!(
            decode(Some(buffer.message(0))),
            Some(MessageId {
                producer: 7,
                sequence: 0
            })
        );
    }

    #[test]
    fn the_smallest_message_is_its_header() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut buffer = PayloadBuffer::new(0, HEADER_BYTES, &mut rng);
        assert_eq!(buffer.message(5).len(), HEADER_BYTES);
    }

    #[test]
    fn anything_else_is_foreign() {
        assert_eq!(decode(None), None);
        assert_eq!(decode(Some(b"hello")), None);
        assert_eq!(decode(Some(b"XHRB\0\0\0\0\0\0\0\0\0\0\0\0")), None);
        assert_eq!(decode(Some(b"CHRB\0\0\0\0\0\0\0")), None, "too short");
    }

    #[test]
    fn the_filler_is_letters_a_to_p() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut buffer = PayloadBuffer::new(0, 4096, &mut rng);
        let mut seen = std::collections::BTreeSet::new();
        for sequence in 0..64 {
            seen.extend(buffer.message(sequence)[HEADER_BYTES..].iter().copied());
        }
        assert_eq!(seen, (b'a'..=b'p').collect());
    }

    #[test]
    fn neighbouring_messages_differ_in_their_filler() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut buffer = PayloadBuffer::new(0, 1024, &mut rng);
        let first = buffer.message(0)[HEADER_BYTES..].to_vec();
        let second = buffer.message(1)[HEADER_BYTES..].to_vec();
        assert_ne!(first, second);
        assert_eq!(
            buffer.message(0)[HEADER_BYTES..],
            first[..],
            "the same message again"
        );
    }

    #[test]
    fn a_batch_compresses_like_its_letters_not_like_one_message() {
        let mut rng = fastrand::Rng::with_seed(2);
        let mut buffer = PayloadBuffer::new(0, 1024, &mut rng);
        let batch: Vec<u8> = (0..1024)
            .flat_map(|sequence| buffer.message(sequence).to_vec())
            .collect();
        let compressed = zstd::bulk::compress(&batch, 3).expect("compress");
        // Four bits of entropy per letter: about half, far from the 1/1000 of a repeated message.
        let ratio = compressed.len() as f64 / batch.len() as f64;
        assert!(
            (0.45..0.7).contains(&ratio),
            "compressed to {ratio:.3} of the batch"
        );
    }

    #[test]
    fn the_filler_follows_the_seed() {
        let filler = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            PayloadBuffer::new(0, 64, &mut rng).message(0).to_vec()
        };
        assert_eq!(filler(3), filler(3));
        assert_ne!(filler(3), filler(4));
    }
}
