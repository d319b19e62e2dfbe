//! Writing a staged snapshot's segment files around the page cache (`O_DIRECT`).
//!
//! Staging writes a whole replica, a gigabyte or more, that nothing reads soon: the node
//! serves its followers and consumers from the newest data, and a leader's reads of the rest
//! go to disk either way. Written through the page cache, every byte first takes a fresh
//! cache page; on virtual machines that hand freed memory back to the host, each of those is
//! a first touch the host must back, and the copy runs several times slower than the disk
//! (1 GiB: 3.6 s through the cache, 0.45 s with `O_DIRECT`, measured with `dd` on the
//! project's 2-core machines). Written directly, the data goes from one small reused buffer
//! to the disk.
//!
//! `O_DIRECT` wants the buffer, the length and the file offset aligned to the device's
//! logical block: the bytes are copied through a [`PIECE_BYTES`] buffer aligned to
//! [`ALIGN_BYTES`] (a multiple of every common block size), the last piece padded with zeros
//! and the file cut back to its length. Durability is unchanged: the caller still syncs the
//! file and its directory. Where the file system refuses `O_DIRECT` (tmpfs on older kernels,
//! some network and overlay file systems) or a direct write fails, the file is written again
//! through the page cache, so the result never depends on it.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Alignment of the buffer, of every write's length and of every write's file offset.
pub const ALIGN_BYTES: usize = 4096;
/// Bytes copied and written at a time; a multiple of [`ALIGN_BYTES`].
pub const PIECE_BYTES: usize = 4 * 1024 * 1024;

thread_local! {
    /// One buffer per thread that stages, reused for every file it writes: a fresh buffer per
    /// file would pay the first touch this module avoids.
    static PIECE_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes `bytes` as the file `path` (created or truncated), unsynced, around the page cache
/// where the file system allows it and through it otherwise.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match write_direct(path, bytes) {
        Ok(()) => Ok(()),
        Err(error) => {
            tracing::debug!(path = %path.display(), %error, "O_DIRECT write refused; writing through the page cache");
            std::fs::write(path, bytes)
        }
    }
}

fn write_direct(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    PIECE_BUFFER.with(|buffer| write_pieces(&mut file, bytes, &mut buffer.borrow_mut()))?;
    file.set_len(bytes.len() as u64)
}

fn write_pieces(file: &mut File, bytes: &[u8], storage: &mut Vec<u8>) -> io::Result<()> {
    if storage.len() < PIECE_BYTES + ALIGN_BYTES {
        *storage = vec![0; PIECE_BYTES + ALIGN_BYTES];
    }
    let start = storage.as_ptr().align_offset(ALIGN_BYTES);
    let piece = &mut storage[start..start + PIECE_BYTES];
    for chunk in bytes.chunks(PIECE_BYTES) {
        piece[..chunk.len()].copy_from_slice(chunk);
        let padded = chunk.len().next_multiple_of(ALIGN_BYTES);
        piece[chunk.len()..padded].fill(0);
        // A short write would leave the next one unaligned; the kernel then refuses it and
        // the caller writes the file through the cache instead.
        file.write_all(&piece[..padded])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterned(length_bytes: usize) -> Vec<u8> {
        (0..length_bytes)
            .map(|index| (index * 31 + index / 4099) as u8)
            .collect()
    }

    #[test]
    fn files_of_every_alignment_read_back_exactly() {
        let directory = tempfile::tempdir().unwrap();
        let lengths = [
            0,
            1,
            ALIGN_BYTES - 1,
            ALIGN_BYTES,
            ALIGN_BYTES + 1,
            PIECE_BYTES,
            2 * PIECE_BYTES + 13,
        ];
        for length_bytes in lengths {
            let path = directory.path().join(format!("{length_bytes}.log"));
            let bytes = patterned(length_bytes);
            write_file(&path, &bytes).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{length_bytes} bytes");
        }
    }

    #[test]
    fn a_longer_file_is_replaced_not_overlaid() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("segment.log");
        write_file(&path, &patterned(3 * ALIGN_BYTES + 7)).unwrap();
        let shorter = vec![9u8; 100];
        write_file(&path, &shorter).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), shorter);
    }

    #[test]
    fn the_direct_path_serves_where_the_file_system_allows_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("direct.log");
        let bytes = patterned(ALIGN_BYTES * 3 + 5);
        match write_direct(&path, &bytes) {
            Ok(()) => assert_eq!(std::fs::read(&path).unwrap(), bytes),
            // Only a refusal of O_DIRECT itself may send the write through the cache.
            Err(error) => assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "{error}"),
        }
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("absent").join("segment.log");
        assert!(write_file(&path, b"data").is_err());
    }
}
