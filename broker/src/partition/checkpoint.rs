//! The partition checkpoint: which Raft index a synced partition log reflects.
//! Format: "CHK1", applied index u64, log end offset i64, CRC-32C of the preceding 20 bytes.

use std::path::Path;

use crate::durable_file::write_atomically;

const FILE_NAME: &str = "checkpoint";
const MAGIC: &[u8; 4] = b"CHK1";
const BYTES: usize = 24;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub applied_index: u64,
    pub log_end_offset: i64,
}

impl Checkpoint {
    /// The checkpoint in `directory`; the default (nothing applied) when there is none.
    pub fn read(directory: &Path) -> std::io::Result<Checkpoint> {
        let bytes = match std::fs::read(directory.join(FILE_NAME)) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Checkpoint::default())
            }
            Err(error) => return Err(error),
        };
        let invalid =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        if bytes.len() != BYTES || &bytes[..4] != MAGIC {
            return Err(invalid("checkpoint has the wrong size or magic"));
        }
        let crc = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[..20]) != crc {
            return Err(invalid("checkpoint CRC does not match"));
        }
        Ok(Checkpoint {
            applied_index: u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes")),
            log_end_offset: i64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes")),
        })
    }

    pub fn write(&self, directory: &Path) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(BYTES);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.applied_index.to_be_bytes());
        bytes.extend_from_slice(&self.log_end_offset.to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
        write_atomically(&directory.join(FILE_NAME), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let directory = tempfile::tempdir().unwrap();
        assert_eq!(
            Checkpoint::read(directory.path()).unwrap(),
            Checkpoint::default()
        );
        let checkpoint = Checkpoint {
            applied_index: 42,
            log_end_offset: 1_000,
        };
        checkpoint.write(directory.path()).unwrap();
        assert_eq!(Checkpoint::read(directory.path()).unwrap(), checkpoint);
        let path = directory.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(Checkpoint::read(directory.path()).is_err());
    }
}
