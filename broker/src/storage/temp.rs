//! A temporary upload file that removes itself unless persisted.

use std::path::{Path, PathBuf};

/// Owns a path under `tmp/`. Dropping it removes the file, so every failure path (an error, a
/// limit hit, a client that went away and dropped the request future) leaves nothing behind.
#[derive(Debug)]
pub struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    pub(super) fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("temp path used after it was released")
    }

    /// Gives up ownership: the file is no longer removed on drop (it was renamed away).
    pub(super) fn release(mut self) -> PathBuf {
        self.path.take().expect("temp path released twice")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove temporary file")
                }
            }
        }
    }
}
