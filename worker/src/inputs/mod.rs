//! Resolving file references to local files a handler can read: a path under the volume's
//! mount, or an object fetched into the cache. Anything that could escape the mount, that names
//! no place or two, or that does not match what Baton recorded is refused.

mod volume;

use std::{path::PathBuf, time::Duration};

use baton_protocol::{FileRef, Location};
use futures::future::try_join_all;
use time::OffsetDateTime;

use crate::{
    cache::{CacheError, CachedFile, ObjectAccess, ObjectCache},
    handler::{Input, JobError},
};

/// A signed URL that expires sooner than this before `started` is given back for a fresh one.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// Where a job's inputs come from.
pub(crate) struct Inputs {
    pub(crate) mount: PathBuf,
    pub(crate) cache: ObjectCache,
}

/// A job's inputs, held: cached files are not evicted until this is dropped.
pub(crate) struct Resolved {
    pub(crate) inputs: Vec<Input>,
    _held: Vec<CachedFile>,
}

impl Inputs {
    pub(crate) async fn resolve(&self, files: &[FileRef]) -> Result<Resolved, JobError> {
        // Every reference first, so that a bad one fails the job before anything is fetched.
        let mut locations = Vec::with_capacity(files.len());
        for file in files {
            let location = file
                .location()
                .map_err(|e| JobError::permanent("invalid_reference", format!("input `{}` {e}", file.name)))?;
            locations.push(location);
        }
        let resolved = try_join_all(files.iter().zip(locations).map(|(file, location)| async move {
            match location {
                Location::Volume(relative) => Ok((volume::resolve(&self.mount, file, relative).await?, None)),
                Location::Object(object) => {
                    let cached = self
                        .cache
                        .get(object, &file.sha256, file.size)
                        .await
                        .map_err(|e| job_error(file, e))?;
                    Ok((cached.path().to_owned(), Some(cached)))
                }
            }
        }))
        .await?;
        let mut inputs = Vec::with_capacity(files.len());
        let mut held = Vec::new();
        for (file, (path, cached)) in files.iter().zip(resolved) {
            inputs.push(Input {
                file: file.clone(),
                path,
            });
            held.extend(cached);
        }
        Ok(Resolved { inputs, _held: held })
    }

    /// The first input whose signed URL expires within [`EXPIRY_MARGIN`] of `now`, when inputs
    /// are read through signed URLs (with credentials, the URL does not matter).
    pub(crate) fn expiring<'a>(&self, files: &'a [FileRef], now: OffsetDateTime) -> Option<&'a FileRef> {
        if self.cache.access() != ObjectAccess::SignedUrl {
            return None;
        }
        expiring(files, now)
    }
}

/// The first file whose object URL expires within [`EXPIRY_MARGIN`] of `now`.
pub fn expiring(files: &[FileRef], now: OffsetDateTime) -> Option<&FileRef> {
    files.iter().find(|file| {
        file.object
            .as_ref()
            .is_some_and(|object| object.expires_at <= now + EXPIRY_MARGIN)
    })
}

fn job_error(file: &FileRef, error: CacheError) -> JobError {
    let message = format!("input `{}`: {error}", file.name);
    match error {
        CacheError::Unavailable(_) | CacheError::Full { .. } => JobError::transient("input_unavailable", message),
        // Fetched bytes that do not match may have been damaged on the way: another attempt
        // fetches them again.
        CacheError::Corrupt(_) => JobError::transient("checksum_mismatch", message),
        CacheError::SizeMismatch { .. } => JobError::permanent("input_mismatch", message),
        CacheError::Io(_) => JobError::transient("input_unreadable", message),
        CacheError::InvalidReference(_) => JobError::permanent("invalid_reference", message),
    }
}

#[cfg(test)]
mod tests {
    use baton_protocol::ObjectRef;
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    fn file(expires_at: Option<OffsetDateTime>) -> FileRef {
        FileRef {
            id: Uuid::nil(),
            name: "input".into(),
            path: expires_at.is_none().then(|| "blobs/x".to_owned()),
            object: expires_at.map(|expires_at| ObjectRef {
                store: "s3://bucket".into(),
                key: "blobs/x".into(),
                url: "http://127.0.0.1:1/x".into(),
                expires_at,
            }),
            size: 1,
            sha256: "00".into(),
            content_type: "text/plain".into(),
        }
    }

    #[test]
    fn a_url_expiring_within_five_seconds_counts_as_expired() {
        let now = datetime!(2026-12-03 20:00:00 UTC);
        let files = [
            file(None),
            file(Some(now + Duration::from_secs(6))),
            file(Some(now + Duration::from_secs(5))),
        ];
        assert_eq!(
            expiring(&files, now).map(|f| f.object.as_ref().unwrap().expires_at),
            Some(now + Duration::from_secs(5))
        );
        assert!(expiring(&files[..2], now).is_none());
        assert!(expiring(&[file(Some(now - Duration::from_secs(1)))], now).is_some());
    }
}
