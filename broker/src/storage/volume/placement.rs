//! Moving a finished upload to its content-addressed place.
//!
//! Callers hold the blob's key in Postgres while placing or removing (a row lock, or an
//! uncommitted insert of the row), which serialises uploads of the same content with each other
//! and with cleanup: see `jobs::submit` and `cleanup`.

use std::io;

use super::{
    TempPath, Volume,
    durable::{create_dir_all_durable, sync_dir},
};
use crate::{
    domain::{Owner, Sha256Hex},
    storage::Placement,
};

impl Volume {
    /// Renames a written and synced temp file to its blob path, unless a copy of the right size
    /// is already there (content-addressed: same name, same bytes). Never renames over a file.
    pub fn place_blob(&self, temp: TempPath, owner: &Owner, sha256: &Sha256Hex, size: u64) -> io::Result<Placement> {
        let dest = self.blob_path(owner, sha256);
        match std::fs::metadata(&dest) {
            Ok(meta) if meta.len() == size => return Ok(Placement::AlreadyPresent),
            Ok(_) => {
                tracing::warn!(path = %dest.display(), "replacing a blob of the wrong size");
                std::fs::remove_file(&dest)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let dir = dest.parent().expect("blob paths have a parent");
        create_dir_all_durable(dir)?;
        temp.persist(&dest).map_err(|e| e.error)?;
        sync_dir(dir)?;
        Ok(Placement::Placed)
    }

    /// Removes a blob file, syncing its directory. A missing file is not an error: returns
    /// false. Directories stay, even empty: an upload may be about to rename into one.
    pub fn remove_blob(&self, owner: &Owner, sha256: &Sha256Hex) -> io::Result<bool> {
        let path = self.blob_path(owner, sha256);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().expect("blob paths have a parent")).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}
