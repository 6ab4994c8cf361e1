//! Files only their owner may read: kubeconfigs, journals, state.

use std::io::Write;
use std::path::Path;

/// Opens `path` for writing, created 0600 (owner only) from the start.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

/// Writes `data` to `path` through a temporary file in the same directory
/// (tempfile creates it 0600) and a rename, so a kill -9 never leaves half a
/// file and nobody else can read it.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
