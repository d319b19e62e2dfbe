//! The append-only journal of [`GroupEvent`]s.
//!
//! File `offsets.journal`: an 8-byte magic, then records
//! `[payload length: u32 LE][CRC-32C of payload: u32 LE][payload: JSON of a GroupEvent]`.
//! Opening replays every whole record and truncates a torn or corrupt tail (a crash in the
//! middle of an append). Compaction writes the live state to `offsets.journal.tmp`, syncs it,
//! renames it over the journal and syncs the directory, so a crash leaves either the old or the
//! new journal.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::events::GroupEvent;

pub const JOURNAL_FILE: &str = "offsets.journal";
const TMP_FILE: &str = "offsets.journal.tmp";
const MAGIC: &[u8; 8] = b"CHRGJ001";
const HEADER: usize = 8;
/// A record larger than this is taken for garbage (a torn length field).
const MAX_RECORD: usize = 64 << 20;

/// What opening the journal found.
#[derive(Debug)]
pub struct Replay {
    pub events: Vec<GroupEvent>,
    /// Bytes cut off the end (a torn or corrupt tail); 0 for a clean journal.
    pub truncated_bytes: u64,
}

/// The open journal file, positioned for appends.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: Arc<File>,
    len: u64,
}

/// Frames one event as a journal record.
pub fn encode_record(event: &GroupEvent) -> io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(event).map_err(io::Error::other)?;
    let mut record = Vec::with_capacity(8 + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    Ok(record)
}

/// Parses records from `data` (after the magic); returns the events and where the valid
/// prefix ends.
fn parse_records(data: &[u8]) -> io::Result<(Vec<GroupEvent>, usize)> {
    let mut events = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= 8 {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap());
        if len > MAX_RECORD || data.len() - pos - 8 < len {
            break;
        }
        let payload = &data[pos + 8..pos + 8 + len];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        // A record whose checksum holds but that does not parse was written by something
        // else (a newer format?): refuse to guess rather than drop data.
        let event: GroupEvent = serde_json::from_slice(payload).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("group journal record at byte {}: {e}", pos + HEADER),
            )
        })?;
        events.push(event);
        pos += 8 + len;
    }
    Ok((events, pos))
}

/// fsync of a directory, so that a create or rename in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and replays it.
    pub fn open(dir: &Path) -> io::Result<(Journal, Replay)> {
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            // Make the new directory's entry durable in its parent.
            match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
                _ => sync_dir(Path::new("."))?,
            }
        }
        let tmp = dir.join(TMP_FILE);
        if tmp.exists() {
            // An unfinished compaction: the journal itself is intact.
            fs::remove_file(&tmp)?;
        }
        let path = dir.join(JOURNAL_FILE);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let (events, valid_len, truncated_bytes) = if data.len() < HEADER {
            // New, or torn while the header was written: start it afresh.
            file.set_len(0)?;
            (&file).write_all(MAGIC)?;
            file.sync_all()?;
            if !existed {
                sync_dir(dir)?;
            }
            (Vec::new(), HEADER, data.len() as u64)
        } else if &data[..HEADER] != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a chronik group journal", path.display()),
            ));
        } else {
            let (events, valid) = parse_records(&data[HEADER..])?;
            let valid_len = HEADER + valid;
            let cut = (data.len() - valid_len) as u64;
            if cut > 0 {
                tracing::warn!(
                    path = %path.display(),
                    valid_bytes = valid_len,
                    cut_bytes = cut,
                    "group journal has a torn or corrupt tail; truncating"
                );
                file.set_len(valid_len as u64)?;
                file.sync_all()?;
            }
            (events, valid_len, cut)
        };
        drop(file);
        let file = OpenOptions::new().append(true).open(&path)?;
        let journal = Journal {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            len: valid_len as u64,
        };
        Ok((
            journal,
            Replay {
                events,
                truncated_bytes,
            },
        ))
    }

    /// Appends one record (not synced; see [`Journal::sync_handle`]). On a failed write the
    /// partial record is cut off again.
    pub fn append(&mut self, event: &GroupEvent) -> io::Result<()> {
        let record = encode_record(event)?;
        if let Err(e) = (&*self.file).write_all(&record) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += record.len() as u64;
        Ok(())
    }

    /// A handle to sync the current file with, outside any lock.
    pub fn sync_handle(&self) -> Arc<File> {
        self.file.clone()
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Current size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len <= HEADER as u64
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// Replaces the journal with `events` (compaction): temp file, fsync, rename, fsync dir.
    pub fn rewrite(&mut self, events: &[GroupEvent]) -> io::Result<()> {
        let tmp = self.dir.join(TMP_FILE);
        let mut buf = Vec::with_capacity(HEADER + events.len() * 128);
        buf.extend_from_slice(MAGIC);
        for event in events {
            buf.extend_from_slice(&encode_record(event)?);
        }
        {
            let mut out = File::create(&tmp)?;
            out.write_all(&buf)?;
            out.sync_all()?;
        }
        fs::rename(&tmp, self.path())?;
        sync_dir(&self.dir)?;
        self.file = Arc::new(OpenOptions::new().append(true).open(self.path())?);
        self.len = buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::events::OffsetEntry;

    fn event(offset: i64) -> GroupEvent {
        GroupEvent::OffsetsCommitted {
            group: "g".into(),
            offsets: vec![OffsetEntry {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            }],
        }
    }

    #[test]
    fn append_replay_and_truncate_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, replay) = Journal::open(dir.path()).unwrap();
            assert!(replay.events.is_empty());
            for i in 0..3 {
                journal.append(&event(i)).unwrap();
            }
            journal.sync().unwrap();
        }
        let path = dir.path().join(JOURNAL_FILE);
        let whole = fs::metadata(&path).unwrap().len();
        // Tear the last record in half.
        let last = encode_record(&event(2)).unwrap().len() as u64;
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(whole - last / 2)
            .unwrap();
        let (mut journal, replay) = Journal::open(dir.path()).unwrap();
        assert_eq!(replay.events, vec![event(0), event(1)]);
        assert_eq!(replay.truncated_bytes, last - last / 2);
        assert_eq!(fs::metadata(&path).unwrap().len(), whole - last);
        journal.append(&event(9)).unwrap();
        drop(journal);
        let (_, replay) = Journal::open(dir.path()).unwrap();
        assert_eq!(replay.events, vec![event(0), event(1), event(9)]);
    }

    #[test]
    fn corrupt_record_cuts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            for i in 0..3 {
                journal.append(&event(i)).unwrap();
            }
        }
        let path = dir.path().join(JOURNAL_FILE);
        let mut data = fs::read(&path).unwrap();
        let first = encode_record(&event(0)).unwrap().len();
        data[HEADER + first + 10] ^= 0xff; // inside the second record's payload
        fs::write(&path, &data).unwrap();
        let (_, replay) = Journal::open(dir.path()).unwrap();
        assert_eq!(replay.events, vec![event(0)]);
    }

    #[test]
    fn foreign_file_is_refused_and_short_header_is_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        fs::write(&path, b"not a journal at all").unwrap();
        assert!(Journal::open(dir.path()).is_err());
        fs::write(&path, b"CHR").unwrap();
        let (journal, replay) = Journal::open(dir.path()).unwrap();
        assert!(replay.events.is_empty());
        assert!(journal.is_empty());
    }

    #[test]
    fn rewrite_replaces_contents() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        for i in 0..10 {
            journal.append(&event(i)).unwrap();
        }
        journal.rewrite(&[event(9)]).unwrap();
        journal.append(&event(10)).unwrap();
        drop(journal);
        let (_, replay) = Journal::open(dir.path()).unwrap();
        assert_eq!(replay.events, vec![event(9), event(10)]);
        assert!(!dir.path().join(TMP_FILE).exists());
    }
}
