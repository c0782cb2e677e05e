//! Listing what is on the volume, for the cleanup pass. Blocking: call from a blocking thread.
//!
//! Only names Baton gives are ever reported: `tmp/*.part` and `blobs/<owner>/<aa>/<bb>/<sha256>`
//! whose parts agree. Anything else under the volume (an operator's file, an NFS client's
//! `.nfs*` placeholder for an unlinked open file) is left alone.

use std::{
    io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use super::Volume;
use crate::domain::{Owner, Sha256Hex};

/// A file found by a scan.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
}

/// A blob file found by a scan, named by its place in the layout.
#[derive(Debug, Clone)]
pub struct FoundBlob {
    pub owner: Owner,
    pub sha256: Sha256Hex,
    pub file: Found,
}

impl Volume {
    /// Upload temp files (`tmp/*.part`).
    pub fn scan_temp(&self) -> io::Result<Vec<Found>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.tmp)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "part")
                && let Some(file) = regular_file(path)?
            {
                found.push(file);
            }
        }
        Ok(found)
    }

    /// Removes a temp file; false when it was already gone (its upload finished meanwhile).
    pub fn remove_temp(&self, path: &Path) -> io::Result<bool> {
        debug_assert!(path.starts_with(&self.tmp));
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The directories that hold blob files: `blobs/<owner>/<aa>/<bb>` for every valid owner.
    pub fn scan_blob_dirs(&self) -> io::Result<Vec<(Owner, PathBuf)>> {
        let mut dirs = Vec::new();
        for (owner_name, owner_dir) in subdirs(&self.root.join("blobs"))? {
            let Some(owner) = Owner::parse(&owner_name) else {
                continue;
            };
            for (aa, aa_dir) in subdirs(&owner_dir)? {
                if !is_hex_pair(&aa) {
                    continue;
                }
                for (bb, bb_dir) in subdirs(&aa_dir)? {
                    if is_hex_pair(&bb) {
                        dirs.push((owner.clone(), bb_dir));
                    }
                }
            }
        }
        dirs.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(dirs)
    }

    /// The blob files in one directory from [`Volume::scan_blob_dirs`] whose names belong there.
    pub fn scan_blobs_in(&self, owner: &Owner, dir: &Path) -> io::Result<Vec<FoundBlob>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Some(sha256) = entry.file_name().to_str().and_then(Sha256Hex::parse) else {
                continue;
            };
            if self.blob_path(owner, &sha256) != entry.path() {
                continue;
            }
            if let Some(file) = regular_file(entry.path())? {
                found.push(FoundBlob {
                    owner: owner.clone(),
                    sha256,
                    file,
                });
            }
        }
        Ok(found)
    }

    /// Whether `blobs/` has no entries at all, as on a volume that is not mounted.
    pub fn blobs_dir_is_empty(&self) -> io::Result<bool> {
        Ok(std::fs::read_dir(self.root.join("blobs"))?.next().is_none())
    }

    /// The size of a blob's file, or `None` when there is no regular file at its path.
    pub fn blob_size(&self, owner: &Owner, sha256: &Sha256Hex) -> io::Result<Option<u64>> {
        Ok(regular_file(self.blob_path(owner, sha256))?.map(|f| f.size))
    }
}

/// Metadata of a regular file; `None` when it vanished or is something else.
fn regular_file(path: PathBuf) -> io::Result<Option<Found>> {
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(Some(Found {
            size: meta.len(),
            modified: meta.modified()?,
            path,
        })),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `(name, path)` of each subdirectory with a UTF-8 name.
fn subdirs(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir()
            && let Ok(name) = entry.file_name().into_string()
        {
            dirs.push((name, entry.path()));
        }
    }
    Ok(dirs)
}

fn is_hex_pair(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
