//! Inputs on the shared volume: a safe relative path joined to the mount, checked against what
//! Baton recorded.

use std::path::{Path, PathBuf};

use baton_protocol::FileRef;

use crate::handler::JobError;

/// The input's path under the mount, once it is known to be a file of the recorded size.
/// `relative` has been checked to be safe ([`baton_protocol::is_safe_path`]).
pub(super) async fn resolve(mount: &Path, file: &FileRef, relative: &str) -> Result<PathBuf, JobError> {
    let path = mount.join(relative);
    let meta = tokio::fs::metadata(&path).await.map_err(|e| {
        // Possibly not yet visible on this node of a network volume: worth another attempt.
        JobError::transient(
            "input_unavailable",
            format!("input `{}` cannot be read: {e}", file.name),
        )
    })?;
    if !meta.is_file() || meta.len() != file.size {
        return Err(JobError::permanent(
            "input_mismatch",
            format!(
                "input `{}` has {} bytes on the volume, expected {}",
                file.name,
                meta.len(),
                file.size
            ),
        ));
    }
    Ok(path)
}
