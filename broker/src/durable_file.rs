//! Small files replaced atomically: a crash leaves the old or the new content, never a mix.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a temporary file, syncs it, renames it over `path`, syncs the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(directory)?;
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)?;
    fs::File::open(directory)?.sync_all()
}
