//! Resolving file references to paths under the mount, refusing anything that could escape it
//! or that does not match what Baton recorded.

use std::path::Path;

use baton_protocol::FileRef;

use crate::handler::{Input, JobError};

pub async fn resolve(mount: &Path, files: &[FileRef]) -> Result<Vec<Input>, JobError> {
    let mut inputs = Vec::with_capacity(files.len());
    for file in files {
        if !file.has_safe_path() {
            return Err(JobError::permanent(
                "invalid_reference",
                format!("input `{}` has an unsafe path", file.name),
            ));
        }
        let path = mount.join(&file.path);
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
        inputs.push(Input {
            file: file.clone(),
            path,
        });
    }
    Ok(inputs)
}
