//! Letting go of cached file pages once their data is on disk.
//!
//! A page-cache page is memory, and on virtual machines whose guest hands freed memory back to
//! the host (virtio-balloon free page reporting), memory taken again after that is a fresh
//! host page: writing 2 GiB into a new file took 3.8 to 4.6 s of system time on such a
//! machine, against 0.7 to 0.8 s when each 16 MiB was synced and then dropped from the cache,
//! so the next writes took the pages just freed. The broker writes every byte twice per replica
//! (Raft log and partition log), so it drops what is durable and what readers are done with:
//! the Raft log's files once raft-engine has moved past them, and a partition log's synced
//! bytes except its newest [`PARTITION_TAIL_CACHED_BYTES`] (what consumers near the end and the
//! next snapshot upload read).
//!
//! This is advice, never data: `POSIX_FADV_DONTNEED` drops only clean pages (dirty ones are
//! written back, then dropped by a later call), and a read of a dropped page reads the disk.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use tracing::debug;

/// The newest bytes of a partition log kept cached after a sync.
pub const PARTITION_TAIL_CACHED_BYTES: u64 = 16 * 1024 * 1024;

/// The granularity of the page cache on the platforms the broker runs on.
pub const PAGE_BYTES: u64 = 4096;

/// The largest folio (a run of pages the page cache handles as one) a file's data is cached
/// in: a huge page. A range released in steps should start each step this far before where
/// the last one ended, or a folio across that boundary is never dropped.
pub const LARGEST_FOLIO_BYTES: u64 = 2 * 1024 * 1024;

/// Drops the cached clean pages of `file` that lie wholly in `start..end` (rounded inwards to
/// pages, so a page partly outside the range, such as a log's last, half-written page, stays).
/// The kernel caches file data in folios of up to [`LARGEST_FOLIO_BYTES`], naturally aligned,
/// and keeps a folio that lies partly outside the range whole.
pub fn release(file: &File, start: u64, end: u64) {
    let first = start.div_ceil(PAGE_BYTES) * PAGE_BYTES;
    let last = end / PAGE_BYTES * PAGE_BYTES;
    if last <= first {
        return;
    }
    let (Ok(offset), Ok(length)) = (
        libc::off_t::try_from(first),
        libc::off_t::try_from(last - first),
    ) else {
        return;
    };
    // SAFETY: posix_fadvise reads no memory of ours; an invalid descriptor is an error code.
    let result =
        unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, length, libc::POSIX_FADV_DONTNEED) };
    if result != 0 {
        debug!(errno = result, "dropping cached pages failed");
    }
}

/// Drops every cached clean page of `file`.
pub fn release_all(file: &File) {
    // The largest range `posix_fadvise` takes: an `off_t` from 0.
    release(file, 0, i64::MAX as u64);
}

/// Drops every cached clean page of the file at `path`; a missing file has none.
pub fn release_file(path: &Path) {
    match File::open(path) {
        Ok(file) => release_all(&file),
        Err(error) => debug!(path = %path.display(), %error, "not dropping cached pages"),
    }
}

/// Test helpers: which pages of a file are cached, and a directory where that can be seen.
#[cfg(test)]
pub(crate) mod residency {
    use super::PAGE_BYTES;
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// A directory on a disk-backed file system (tmpfs pages are memory and never dropped).
    pub fn disk_directory() -> tempfile::TempDir {
        tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap()
    }

    /// Which pages of the file at `path` are in the page cache, by `mincore`.
    pub fn cached_pages(path: &Path) -> Vec<bool> {
        let file = File::open(path).unwrap();
        let length = usize::try_from(file.metadata().unwrap().len()).unwrap();
        if length == 0 {
            return Vec::new();
        }
        // SAFETY: a read-only mapping of a file we hold open, unmapped before return; mincore
        // writes one byte per page into a vector of that many bytes.
        unsafe {
            let address = libc::mmap(
                std::ptr::null_mut(),
                length,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(address, libc::MAP_FAILED);
            let mut residency = vec![0u8; length.div_ceil(PAGE_BYTES as usize)];
            assert_eq!(libc::mincore(address, length, residency.as_mut_ptr()), 0);
            libc::munmap(address, length);
            residency.iter().map(|page| page & 1 == 1).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::residency::{cached_pages, disk_directory};
    use super::*;

    #[test]
    fn synced_pages_in_the_range_leave_the_cache_and_the_rest_stay() {
        const MIB: usize = 1024 * 1024;
        let directory = disk_directory();
        let path = directory.path().join("log");
        let length = 8 * MIB + 100;
        std::fs::write(&path, vec![7u8; length]).unwrap();
        let file = File::open(&path).unwrap();
        file.sync_data().unwrap();
        assert!(cached_pages(&path).iter().all(|page| *page));

        release(&file, 2 * MIB as u64 + 1, length as u64);
        let after = cached_pages(&path);
        let page_of = |byte: usize| byte / PAGE_BYTES as usize;
        // Below the range; then a folio (up to 2 MiB) holding the range's start may stay.
        assert!(after[..page_of(2 * MIB)].iter().all(|page| *page));
        assert!(after[page_of(4 * MIB)..page_of(8 * MIB)]
            .iter()
            .all(|page| !*page));
        assert!(after[page_of(8 * MIB)], "the last, partial page stays");

        // The data itself is untouched.
        assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; length]);
    }

    #[test]
    fn a_whole_file_is_released_and_a_missing_one_is_not_an_error() {
        let directory = disk_directory();
        let path = directory.path().join("raft");
        std::fs::write(&path, vec![1u8; 8 * PAGE_BYTES as usize]).unwrap();
        File::open(&path).unwrap().sync_data().unwrap();
        release_file(&path);
        assert!(cached_pages(&path).iter().all(|page| !*page));
        release_file(&directory.path().join("gone"));
    }
}
