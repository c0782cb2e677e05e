//! The shared volume: one [`super::Backend`], where uploads are streamed to a temp file, hashed,
//! synced and renamed to their content address.
//!
//! Layout under the volume root:
//! - `tmp/<uuid>.part`: uploads in progress, removed on every failure path;
//! - `blobs/<owner>/<aa>/<bb>/<sha256>`: committed content, one file per distinct content per
//!   owner, where `aa` and `bb` are the first two pairs of hex digits of the SHA-256.
//!
//! The cleanup pass lists both (`scan`) and removes what no job needs any more.

mod durable;
mod placement;
mod scan;
mod writer;

use std::{
    io,
    path::{Path, PathBuf},
};

use uuid::Uuid;

pub use scan::{Found, FoundBlob};
pub use writer::{BlobWriter, UploadIo};

/// A temporary upload file: removed when dropped (on every failure path: an error, a limit
/// hit, a client that went away and dropped the request future), unless persisted by rename.
pub use tempfile::TempPath;

use crate::domain::{Owner, Sha256Hex};

#[derive(Debug, Clone)]
pub struct Volume {
    root: PathBuf,
    tmp: PathBuf,
    upload_io: UploadIo,
}

impl Volume {
    /// Opens (creating if needed) the volume layout under `root`.
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("blobs"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        let root = root.canonicalize()?;
        Ok(Self {
            tmp: root.join("tmp"),
            root,
            upload_io: UploadIo::default(),
        })
    }

    /// Opens a volume Baton already laid out, creating nothing: for commands that must not take
    /// an unmounted or mistyped path for an empty volume.
    pub fn open_existing(root: &Path) -> io::Result<Self> {
        for dir in ["blobs", "tmp"] {
            if !root.join(dir).is_dir() {
                let message = format!("{} has no {dir}/ directory: not a Baton volume", root.display());
                return Err(io::Error::new(io::ErrorKind::NotFound, message));
            }
        }
        let root = root.canonicalize()?;
        Ok(Self {
            tmp: root.join("tmp"),
            root,
            upload_io: UploadIo::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a blob relative to the volume root, as sent to workers.
    pub fn blob_relative_path(owner: &Owner, sha256: &Sha256Hex) -> String {
        let hex = sha256.as_str();
        format!("blobs/{}/{}/{}/{hex}", owner.as_str(), &hex[0..2], &hex[2..4])
    }

    pub fn blob_path(&self, owner: &Owner, sha256: &Sha256Hex) -> PathBuf {
        self.root.join(Self::blob_relative_path(owner, sha256))
    }

    /// A fresh temporary file path on the volume (same filesystem as the blobs, so a rename
    /// moves it into place). The returned guard removes the file unless it is persisted.
    pub fn temp_path(&self) -> TempPath {
        TempPath::try_from_path(self.tmp.join(format!("{}.part", Uuid::now_v7())))
            .expect("tmp/ is an absolute path: the root was canonicalised when opened")
    }

    /// A writer for a new upload, streaming to a fresh temp file.
    pub fn writer(&self) -> BlobWriter {
        BlobWriter::create(self.temp_path(), self.upload_io.clone())
    }

    /// Proves the volume is writable: creates, syncs and removes a probe file.
    pub async fn check_writable(&self) -> io::Result<()> {
        let probe = self.temp_path();
        let path = probe.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&path)?;
            file.sync_all()?;
            drop(probe);
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}
