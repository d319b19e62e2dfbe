//! Sealing snapshot objects: compression, then a checksum of what is stored.
//!
//! [`seal`] compresses the plain bytes (none, gzip or zstd) and returns them with an
//! [`ObjectDigest`]: the compression, the CRC-32 (IEEE) of the *stored* bytes, and both lengths.
//! The digest is kept apart from the object (a snapshot manifest holds it), so [`unseal`]
//! checks, in order, the stored length, the checksum (corruption is found before a decompressor
//! runs on it), and then decompresses with the digest's plain length as a hard limit: memory
//! grows with the bytes actually inflated and never beyond `plain_bytes`, so neither a
//! decompression bomb nor a digest that lies can make it allocate more. The plain length must
//! then match exactly.
//!
//! Levels: zstd 1 and gzip 1. On record data zstd 1 sealed about twice as fast as zstd 3 and
//! compressed no worse; gzip 6 was six times slower than gzip 1 for a 1.4x smaller object. The
//! numbers are in ARCHITECTURE.md; `broker/benches/snapshot_codec.rs` measures them.

use std::io::{Read, Write};

/// zstd level used by [`seal`].
pub const ZSTD_LEVEL: i32 = 1;

/// gzip (deflate) level used by [`seal`].
pub const GZIP_LEVEL: u32 = 1;

/// Capacity reserved before inflating; the buffer then doubles, capped at `plain_bytes`.
const INITIAL_PLAIN_CAPACITY_BYTES: u64 = 1024 * 1024;

/// How a snapshot object's bytes are compressed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// File name extension of an object stored this way.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "raw",
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }
}

/// What is needed to check and unseal a stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectDigest {
    pub compression: Compression,
    /// CRC-32 (IEEE) of the stored, compressed bytes.
    pub crc32: u32,
    pub stored_bytes: u64,
    pub plain_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CorruptObject {
    #[error("object truncated: {actual_bytes} bytes stored, the digest says {expected_bytes}")]
    Truncated {
        expected_bytes: u64,
        actual_bytes: u64,
    },
    #[error("object too long: {actual_bytes} bytes stored, the digest says {expected_bytes}")]
    TrailingBytes {
        expected_bytes: u64,
        actual_bytes: u64,
    },
    #[error("object checksum mismatch: CRC-32 {actual:#010x}, the digest says {expected:#010x}")]
    Checksum { expected: u32, actual: u32 },
    #[error("object does not decompress: {0}")]
    Decompress(String),
    #[error("object decompresses to {actual_bytes} bytes, the digest says {expected_bytes}")]
    PlainSize {
        expected_bytes: u64,
        actual_bytes: u64,
    },
    /// Inflating stopped at the digest's plain length with more still coming.
    #[error(
        "object decompresses to more than the {expected_bytes} bytes the digest says; \
         stopped there"
    )]
    PlainTooLarge { expected_bytes: u64 },
}

/// Compresses `plain` and digests the result.
pub fn seal(plain: &[u8], compression: Compression) -> (Vec<u8>, ObjectDigest) {
    let stored = match compression {
        Compression::None => plain.to_vec(),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(plain.len() / 4),
                flate2::Compression::new(GZIP_LEVEL),
            );
            encoder
                .write_all(plain)
                .expect("writing to a Vec cannot fail");
            encoder.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Zstd => {
            zstd::bulk::compress(plain, ZSTD_LEVEL).expect("zstd compresses any input in memory")
        }
    };
    let digest = ObjectDigest {
        compression,
        crc32: crc32fast::hash(&stored),
        stored_bytes: stored.len() as u64,
        plain_bytes: plain.len() as u64,
    };
    (stored, digest)
}

/// Checks `stored` against `digest` and returns the plain bytes.
pub fn unseal(stored: &[u8], digest: &ObjectDigest) -> Result<Vec<u8>, CorruptObject> {
    let actual_bytes = stored.len() as u64;
    if actual_bytes < digest.stored_bytes {
        return Err(CorruptObject::Truncated {
            expected_bytes: digest.stored_bytes,
            actual_bytes,
        });
    }
    if actual_bytes > digest.stored_bytes {
        return Err(CorruptObject::TrailingBytes {
            expected_bytes: digest.stored_bytes,
            actual_bytes,
        });
    }
    let actual = crc32fast::hash(stored);
    if actual != digest.crc32 {
        return Err(CorruptObject::Checksum {
            expected: digest.crc32,
            actual,
        });
    }
    match digest.compression {
        Compression::None => {
            if actual_bytes != digest.plain_bytes {
                return Err(CorruptObject::PlainSize {
                    expected_bytes: digest.plain_bytes,
                    actual_bytes,
                });
            }
            Ok(stored.to_vec())
        }
        Compression::Gzip => inflate(flate2::read::GzDecoder::new(stored), digest.plain_bytes),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(stored)
                .map_err(|error| CorruptObject::Decompress(error.to_string()))?;
            inflate(decoder, digest.plain_bytes)
        }
    }
}

/// Reads `decoder` to its end, holding at most `plain_bytes`: the buffer grows with what
/// arrives (doubling, capped at `plain_bytes`), and one byte past the limit ends it.
fn inflate(mut decoder: impl Read, plain_bytes: u64) -> Result<Vec<u8>, CorruptObject> {
    let limit = usize::try_from(plain_bytes).unwrap_or(usize::MAX);
    let initial = usize::try_from(plain_bytes.min(INITIAL_PLAIN_CAPACITY_BYTES))
        .expect("at most INITIAL_PLAIN_CAPACITY_BYTES");
    // `plain[..filled]` is inflated data; the rest is zeroed room, grown only when full.
    let mut plain = vec![0u8; initial];
    let mut filled = 0;
    while filled < limit {
        if filled == plain.len() {
            let more = plain.len().min(limit - plain.len()).max(1);
            plain.reserve_exact(more);
            plain.resize(plain.len() + more, 0);
        }
        match decoder.read(&mut plain[filled..]) {
            Ok(0) => {
                plain.truncate(filled);
                return finish(plain, plain_bytes);
            }
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(CorruptObject::Decompress(error.to_string())),
        }
    }
    // At the limit: the stream must end here (reading on also checks gzip's trailer).
    let mut probe = [0u8; 1];
    loop {
        match decoder.read(&mut probe) {
            Ok(0) => return finish(plain, plain_bytes),
            Ok(_) => {
                return Err(CorruptObject::PlainTooLarge {
                    expected_bytes: plain_bytes,
                })
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CorruptObject::Decompress(error.to_string())),
        }
    }
}

fn finish(plain: Vec<u8>, plain_bytes: u64) -> Result<Vec<u8>, CorruptObject> {
    let actual_bytes = plain.len() as u64;
    if actual_bytes != plain_bytes {
        return Err(CorruptObject::PlainSize {
            expected_bytes: plain_bytes,
            actual_bytes,
        });
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ALL: [Compression; 3] = [Compression::None, Compression::Gzip, Compression::Zstd];

    /// Record-like lines mixed with pseudo-random bytes, deterministic.
    fn mixed_data(length_bytes: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(length_bytes);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut record = 0u64;
        while data.len() < length_bytes {
            if record % 4 == 3 {
                for _ in 0..8 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    data.extend_from_slice(&state.to_le_bytes());
                }
            } else {
                data.extend_from_slice(
                    format!(
                        "{{\"id\":{record},\"user\":\"user-{}\",\"event\":\"click\",\"ts\":{}}}\n",
                        record % 97,
                        1_700_000_000_000u64 + record * 13
                    )
                    .as_bytes(),
                );
            }
            record += 1;
        }
        data.truncate(length_bytes);
        data
    }

    fn round_trip(plain: &[u8], compression: Compression) {
        let (stored, digest) = seal(plain, compression);
        assert_eq!(digest.compression, compression);
        assert_eq!(digest.plain_bytes, plain.len() as u64);
        assert_eq!(digest.stored_bytes, stored.len() as u64);
        assert_eq!(digest.crc32, crc32fast::hash(&stored));
        assert_eq!(unseal(&stored, &digest).expect("unseals"), plain);
    }

    /// A digest of `stored` that claims `plain_bytes`, with a checksum that matches.
    fn digest_claiming(stored: &[u8], compression: Compression, plain_bytes: u64) -> ObjectDigest {
        ObjectDigest {
            compression,
            crc32: crc32fast::hash(stored),
            stored_bytes: stored.len() as u64,
            plain_bytes,
        }
    }

    #[test]
    fn every_compression_round_trips() {
        let mixed = mixed_data(5 * 1024 * 1024);
        for compression in ALL {
            round_trip(b"", compression);
            round_trip(b"x", compression);
            round_trip(&mixed, compression);
        }
    }

    #[test]
    fn compression_shrinks_record_data() {
        let mixed = mixed_data(1024 * 1024);
        for compression in [Compression::Gzip, Compression::Zstd] {
            let (stored, _) = seal(&mixed, compression);
            assert!(stored.len() < mixed.len() * 3 / 4, "{compression:?}");
        }
    }

    #[test]
    fn names_and_extensions() {
        assert_eq!(Compression::None.extension(), "raw");
        assert_eq!(Compression::Gzip.extension(), "gz");
        assert_eq!(Compression::Zstd.extension(), "zst");
        let (_, digest) = seal(b"abc", Compression::Zstd);
        let json = serde_json::to_string(&digest).unwrap();
        assert!(json.contains("\"compression\":\"zstd\""), "{json}");
        assert_eq!(serde_json::from_str::<ObjectDigest>(&json).unwrap(), digest);
        assert_eq!(
            serde_json::from_str::<Compression>("\"gzip\"").unwrap(),
            Compression::Gzip
        );
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let plain = mixed_data(64 * 1024);
        for compression in ALL {
            let (mut stored, digest) = seal(&plain, compression);
            let middle = stored.len() / 2;
            stored[middle] ^= 0x01;
            match unseal(&stored, &digest) {
                Err(CorruptObject::Checksum { expected, actual }) => {
                    assert_eq!(expected, digest.crc32);
                    assert_ne!(actual, expected);
                }
                other => panic!("{compression:?}: expected a checksum error, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_truncated_or_extended_object_is_refused_by_length() {
        let plain = mixed_data(64 * 1024);
        for compression in ALL {
            let (stored, digest) = seal(&plain, compression);
            match unseal(&stored[..stored.len() - 1], &digest) {
                Err(CorruptObject::Truncated {
                    expected_bytes,
                    actual_bytes,
                }) => {
                    assert_eq!(expected_bytes, stored.len() as u64);
                    assert_eq!(actual_bytes, stored.len() as u64 - 1);
                }
                other => panic!("{compression:?}: expected Truncated, got {other:?}"),
            }
            let mut longer = stored.clone();
            longer.push(0);
            assert!(matches!(
                unseal(&longer, &digest),
                Err(CorruptObject::TrailingBytes { .. })
            ));
        }
    }

    #[test]
    fn a_digest_claiming_fewer_plain_bytes_stops_inflating_there() {
        let plain = mixed_data(256 * 1024);
        for compression in ALL {
            let (stored, digest) = seal(&plain, compression);
            let lying = ObjectDigest {
                plain_bytes: digest.plain_bytes - 1,
                ..digest
            };
            let error = unseal(&stored, &lying).unwrap_err();
            match compression {
                Compression::None => assert!(matches!(
                    error,
                    CorruptObject::PlainSize { expected_bytes, actual_bytes }
                        if expected_bytes == lying.plain_bytes && actual_bytes == digest.plain_bytes
                )),
                _ => assert!(
                    matches!(
                        error,
                        CorruptObject::PlainTooLarge { expected_bytes }
                            if expected_bytes == lying.plain_bytes
                    ),
                    "{compression:?}: {error}"
                ),
            }
        }
    }

    #[test]
    fn a_digest_claiming_more_plain_bytes_is_refused() {
        let plain = mixed_data(256 * 1024);
        for compression in ALL {
            let (stored, digest) = seal(&plain, compression);
            for claimed in [digest.plain_bytes + 1, u64::MAX] {
                let lying = ObjectDigest {
                    plain_bytes: claimed,
                    ..digest
                };
                match unseal(&stored, &lying) {
                    Err(CorruptObject::PlainSize {
                        expected_bytes,
                        actual_bytes,
                    }) => {
                        assert_eq!(expected_bytes, claimed);
                        assert_eq!(actual_bytes, digest.plain_bytes);
                    }
                    other => panic!("{compression:?}: expected PlainSize, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_gzip_bomb_is_capped() {
        // 256 MiB of zeros deflates to about 250 KiB; the digest allows 1 MiB.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..256 {
            encoder.write_all(&zeros).unwrap();
        }
        let stored = encoder.finish().unwrap();
        assert!(stored.len() < 1024 * 1024);
        let digest = digest_claiming(&stored, Compression::Gzip, 1024 * 1024);
        assert!(matches!(
            unseal(&stored, &digest),
            Err(CorruptObject::PlainTooLarge { expected_bytes }) if expected_bytes == 1024 * 1024
        ));
    }

    #[test]
    fn a_zstd_bomb_is_capped() {
        // 1 GiB of zeros compresses to a few tens of KiB; the digest allows 1 MiB.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        let zeros = vec![0u8; 16 * 1024 * 1024];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let stored = encoder.finish().unwrap();
        assert!(stored.len() < 1024 * 1024, "{} bytes", stored.len());
        let digest = digest_claiming(&stored, Compression::Zstd, 1024 * 1024);
        assert!(matches!(
            unseal(&stored, &digest),
            Err(CorruptObject::PlainTooLarge { expected_bytes }) if expected_bytes == 1024 * 1024
        ));
    }

    #[test]
    fn garbage_with_a_matching_checksum_fails_to_decompress() {
        let garbage = b"this is neither gzip nor zstd".to_vec();
        for compression in [Compression::Gzip, Compression::Zstd] {
            let digest = digest_claiming(&garbage, compression, 100);
            assert!(
                matches!(unseal(&garbage, &digest), Err(CorruptObject::Decompress(_))),
                "{compression:?}"
            );
        }
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let (stored, digest) = seal(b"hello", Compression::None);
        let error = unseal(&stored[..3], &digest).unwrap_err();
        assert_eq!(
            error.to_string(),
            "object truncated: 3 bytes stored, the digest says 5"
        );
        let error = unseal(b"hellO", &digest).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("object checksum mismatch: CRC-32 0x"),
            "{error}"
        );
    }

    proptest! {
        #[test]
        fn sealed_objects_unseal_to_their_input(
            plain in proptest::collection::vec(any::<u8>(), 0..16 * 1024),
            repeat in 1usize..8,
            compression in prop_oneof![
                Just(Compression::None),
                Just(Compression::Gzip),
                Just(Compression::Zstd),
            ],
        ) {
            let plain = plain.repeat(repeat);
            let (stored, digest) = seal(&plain, compression);
            prop_assert_eq!(unseal(&stored, &digest).unwrap(), plain);
        }
    }
}
