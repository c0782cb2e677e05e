//! fsync helpers: a rename is only durable once its directory is synced.

use std::{fs::File, io, path::Path};

/// Syncs a directory's entries to disk.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, syncing each parent whose entries changed, so the new
/// directories survive a crash. Returns without syncing anything when `dir` already exists.
pub(super) fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        }
        // Another upload created it meanwhile. Sync the parent anyway: our rename must not
        // depend on the other creator having synced it yet.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match dir.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        },
        Err(e) => Err(e),
    }
}
