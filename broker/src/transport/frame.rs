//! The transport's byte formats: a handshake the dialer writes once, then checksummed frames.
//!
//! All integers are big-endian.
//!
//! ```text
//! handshake: "CHRT" | version u16 | node_id u64 | cluster_id_len u16 | cluster_id (UTF-8)
//! frame:     length u32 | crc32c u32 | payload (`length` bytes; the CRC-32C covers it)
//! payload:   count u32 | count x (group_id u64 | payload_len u32 | payload bytes)
//! ```
//!
//! Decoding trusts no length field: the frame length is checked against the cap before any
//! buffer is reserved for it (and then only as bytes arrive), the CRC is checked before the
//! payload is parsed, and the envelope count is checked against the bytes actually present
//! before a vector is sized from it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::Envelope;

/// The first bytes on every transport connection.
pub const MAGIC: [u8; 4] = *b"CHRT";
/// The wire format version this code speaks; a connection with any other is refused.
pub const FORMAT_VERSION: u16 = 1;
/// The longest cluster id a handshake may carry.
pub const CLUSTER_ID_BYTES_MAX: usize = 255;
/// Frame length and CRC-32C.
pub const FRAME_HEADER_BYTES: usize = 8;
/// The envelope count at the start of a frame's payload.
pub const COUNT_BYTES: usize = 4;
/// Group id and payload length in front of each envelope's bytes.
pub const ENVELOPE_HEADER_BYTES: usize = 12;
/// How much buffer is reserved ahead of the bytes that have arrived.
pub const READ_AHEAD_BYTES: usize = 64 * 1024;

/// What a dialer says about itself before its first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub node_id: u64,
    pub cluster_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("bad magic {0:02x?} (not a chronik transport connection)")]
    BadMagic([u8; 4]),
    #[error("unsupported transport format version {0} (this node speaks {FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    #[error("cluster id of {0} bytes exceeds the limit of {CLUSTER_ID_BYTES_MAX}")]
    ClusterIdTooLong(usize),
    #[error("cluster id is not UTF-8")]
    ClusterIdNotUtf8,
    #[error("reading the handshake: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {length} exceeds the limit of {limit} bytes")]
    TooLarge { length: usize, limit: usize },
    #[error("frame length {0} is shorter than the envelope count")]
    TooShort(usize),
    #[error("frame checksum mismatch (header says {expected:#010x}, payload has {actual:#010x})")]
    BadChecksum { expected: u32, actual: u32 },
    #[error("envelope count {count} cannot fit in a {length}-byte frame")]
    BadCount { count: u32, length: usize },
    #[error("envelope {index} runs past the end of the frame")]
    Truncated { index: u32 },
    #[error("{0} bytes left over after the last envelope")]
    TrailingBytes(usize),
}

impl Handshake {
    /// The handshake's bytes. Panics if the cluster id is longer than allowed (checked when
    /// the transport starts).
    pub fn encode(&self) -> Bytes {
        let cluster = self.cluster_id.as_bytes();
        assert!(cluster.len() <= CLUSTER_ID_BYTES_MAX, "cluster id too long");
        let mut out = BytesMut::with_capacity(16 + cluster.len());
        out.put_slice(&MAGIC);
        out.put_u16(FORMAT_VERSION);
        out.put_u64(self.node_id);
        out.put_u16(cluster.len() as u16);
        out.put_slice(cluster);
        out.freeze()
    }
}

/// Reads a handshake, field by field, never past its end (frames may follow in the stream).
pub async fn read_handshake<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Handshake, HandshakeError> {
    let mut magic = [0u8; 4];
    reader.read_exact(&mut magic).await?;
    if magic != MAGIC {
        return Err(HandshakeError::BadMagic(magic));
    }
    let version = reader.read_u16().await?;
    if version != FORMAT_VERSION {
        return Err(HandshakeError::UnsupportedVersion(version));
    }
    let node_id = reader.read_u64().await?;
    let cluster_len = reader.read_u16().await? as usize;
    if cluster_len > CLUSTER_ID_BYTES_MAX {
        return Err(HandshakeError::ClusterIdTooLong(cluster_len));
    }
    let mut cluster = vec![0u8; cluster_len];
    reader.read_exact(&mut cluster).await?;
    let cluster_id = String::from_utf8(cluster).map_err(|_| HandshakeError::ClusterIdNotUtf8)?;
    Ok(Handshake {
        node_id,
        cluster_id,
    })
}

/// Bytes an envelope takes inside a frame's payload.
pub fn envelope_encoded_len(envelope: &Envelope) -> usize {
    ENVELOPE_HEADER_BYTES + envelope.payload.len()
}

/// Appends one frame holding `envelopes` to `out`. The caller keeps the payload within the
/// frame cap (the sender's batching does); lengths are u32 on the wire.
pub fn encode_frame(out: &mut BytesMut, envelopes: &[Envelope]) {
    let start = out.len();
    let payload_len = COUNT_BYTES + envelopes.iter().map(envelope_encoded_len).sum::<usize>();
    debug_assert!(payload_len <= u32::MAX as usize);
    out.reserve(FRAME_HEADER_BYTES + payload_len);
    out.put_u32(payload_len as u32);
    out.put_u32(0); // CRC, filled in below
    out.put_u32(envelopes.len() as u32);
    for envelope in envelopes {
        out.put_u64(envelope.group_id);
        out.put_u32(envelope.payload.len() as u32);
        out.put_slice(&envelope.payload);
    }
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Takes one complete, checksum-verified frame payload off the front of `buffer`, or returns
/// `None` when more bytes are needed. The length is checked against `limit` as soon as the
/// header is there, before any space is reserved for the payload.
pub fn take_frame(buffer: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, FrameError> {
    if buffer.len() < FRAME_HEADER_BYTES {
        return Ok(None);
    }
    let length = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
    if length > limit {
        return Err(FrameError::TooLarge { length, limit });
    }
    if length < COUNT_BYTES {
        return Err(FrameError::TooShort(length));
    }
    if buffer.len() < FRAME_HEADER_BYTES + length {
        let missing = FRAME_HEADER_BYTES + length - buffer.len();
        buffer.reserve(missing.min(READ_AHEAD_BYTES));
        return Ok(None);
    }
    let expected = u32::from_be_bytes([buffer[4], buffer[5], buffer[6], buffer[7]]);
    buffer.advance(FRAME_HEADER_BYTES);
    let payload = buffer.split_to(length).freeze();
    let actual = crc32c::crc32c(&payload);
    if actual != expected {
        return Err(FrameError::BadChecksum { expected, actual });
    }
    Ok(Some(payload))
}

/// Splits a verified payload into envelopes; each envelope's bytes share the payload's buffer.
pub fn decode_envelopes(mut payload: Bytes) -> Result<Vec<Envelope>, FrameError> {
    let length = payload.len();
    if length < COUNT_BYTES {
        return Err(FrameError::TooShort(length));
    }
    let count = payload.get_u32();
    if count as usize > payload.len() / ENVELOPE_HEADER_BYTES {
        return Err(FrameError::BadCount { count, length });
    }
    let mut envelopes = Vec::with_capacity(count as usize);
    for index in 0..count {
        if payload.len() < ENVELOPE_HEADER_BYTES {
            return Err(FrameError::Truncated { index });
        }
        let group_id = payload.get_u64();
        let len = payload.get_u32() as usize;
        if len > payload.len() {
            return Err(FrameError::Truncated { index });
        }
        envelopes.push(Envelope {
            group_id,
            payload: payload.split_to(len),
        });
    }
    if !payload.is_empty() {
        return Err(FrameError::TrailingBytes(payload.len()));
    }
    Ok(envelopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope(group_id: u64, payload: &[u8]) -> Envelope {
        Envelope {
            group_id,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn frame_of(envelopes: &[Envelope]) -> BytesMut {
        let mut out = BytesMut::new();
        encode_frame(&mut out, envelopes);
        out
    }

    #[test]
    fn frames_round_trip_and_wait_for_missing_bytes() {
        let sent = vec![
            envelope(7, b"hello"),
            envelope(u64::MAX, b""),
            envelope(0, &[9; 300]),
        ];
        let full = frame_of(&sent);
        let mut buffer = BytesMut::from(&full[..full.len() - 1]);
        assert_eq!(take_frame(&mut buffer, 1024), Ok(None));
        buffer.extend_from_slice(&full[full.len() - 1..]);
        buffer.extend_from_slice(b"next");
        let payload = take_frame(&mut buffer, 1024).unwrap().unwrap();
        assert_eq!(decode_envelopes(payload).unwrap(), sent);
        assert_eq!(&buffer[..], b"next");
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut frame = frame_of(&[envelope(1, b"payload")]);
        let last = frame.len() - 1;
        frame[last] ^= 0x01;
        assert!(matches!(
            take_frame(&mut frame, 1024),
            Err(FrameError::BadChecksum { .. })
        ));
    }

    #[test]
    fn an_oversized_length_fails_before_any_reservation() {
        let mut buffer = BytesMut::with_capacity(FRAME_HEADER_BYTES);
        buffer.put_u32(u32::MAX);
        buffer.put_u32(0);
        assert_eq!(
            take_frame(&mut buffer, 1024),
            Err(FrameError::TooLarge {
                length: u32::MAX as usize,
                limit: 1024
            })
        );
        assert!(buffer.capacity() < 1024);
    }

    #[test]
    fn a_large_legal_claim_reserves_only_read_ahead() {
        let mut buffer = BytesMut::new();
        buffer.put_u32(60 << 20);
        buffer.put_u32(0);
        assert_eq!(take_frame(&mut buffer, 64 << 20), Ok(None));
        assert!(buffer.capacity() <= FRAME_HEADER_BYTES + READ_AHEAD_BYTES + 64);
    }

    #[test]
    fn a_lying_count_is_refused_without_sizing_a_vector_from_it() {
        let mut payload = BytesMut::new();
        payload.put_u32(u32::MAX);
        payload.put_slice(&[0; 12]);
        assert!(matches!(
            decode_envelopes(payload.freeze()),
            Err(FrameError::BadCount { .. })
        ));
    }

    #[test]
    fn truncated_envelopes_and_trailing_bytes_are_refused() {
        let mut payload = BytesMut::new();
        payload.put_u32(1);
        payload.put_u64(5);
        payload.put_u32(10);
        payload.put_slice(b"short");
        assert_eq!(
            decode_envelopes(payload.freeze()),
            Err(FrameError::Truncated { index: 0 })
        );
        let mut payload = BytesMut::new();
        payload.put_u32(0);
        payload.put_slice(b"extra");
        assert_eq!(
            decode_envelopes(payload.freeze()),
            Err(FrameError::TrailingBytes(5))
        );
        let mut short = BytesMut::new();
        short.put_u32(2);
        short.put_u32(0);
        assert_eq!(take_frame(&mut short, 1024), Err(FrameError::TooShort(2)));
    }

    #[tokio::test]
    async fn handshakes_round_trip_and_bad_ones_are_named() {
        let handshake = Handshake {
            node_id: 42,
            cluster_id: "prod-a".into(),
        };
        let mut bytes = handshake.encode().to_vec();
        bytes.extend_from_slice(b"frame bytes follow");
        let mut reader = &bytes[..];
        assert_eq!(read_handshake(&mut reader).await.unwrap(), handshake);
        assert_eq!(reader, b"frame bytes follow");

        let mut reader = &b"KAFKA-REQUEST-BYTES"[..];
        assert!(matches!(
            read_handshake(&mut reader).await,
            Err(HandshakeError::BadMagic(_))
        ));
        let mut wrong_version = handshake.encode().to_vec();
        wrong_version[4..6].copy_from_slice(&99u16.to_be_bytes());
        assert!(matches!(
            read_handshake(&mut &wrong_version[..]).await,
            Err(HandshakeError::UnsupportedVersion(99))
        ));
        let mut long_cluster = handshake.encode()[..14].to_vec();
        long_cluster.extend_from_slice(&1000u16.to_be_bytes());
        assert!(matches!(
            read_handshake(&mut &long_cluster[..]).await,
            Err(HandshakeError::ClusterIdTooLong(1000))
        ));
    }

    proptest! {
        #[test]
        fn any_batch_round_trips(
            batch in proptest::collection::vec(
                (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..200)),
                0..40,
            )
        ) {
            let sent: Vec<Envelope> = batch.iter().map(|(g, p)| envelope(*g, p)).collect();
            let mut buffer = frame_of(&sent);
            let payload = take_frame(&mut buffer, 1 << 20).unwrap().unwrap();
            prop_assert!(buffer.is_empty());
            prop_assert_eq!(decode_envelopes(payload).unwrap(), sent);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut buffer = BytesMut::from(&bytes[..]);
            if let Ok(Some(payload)) = take_frame(&mut buffer, 256) {
                let _ = decode_envelopes(payload);
            }
            let _ = decode_envelopes(Bytes::from(bytes));
        }
    }
}
