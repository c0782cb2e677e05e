//! Building the job message: references only, never bytes.

use std::{io, time::Duration};

use baton_protocol::{FileRef, JobMessage, ObjectRef, PROTOCOL_VERSION, lease};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::{
    db::{files::FileRow, jobs::JobRow},
    domain::{Owner, Sha256Hex},
    storage::{Backend, MAX_SIGNED_URL, Storage, StoreName, Volume},
};

/// The message for the job's current attempt. `files` are the job's rows in position order;
/// `lease` is Baton's lease, which workers cannot know otherwise and must heartbeat well within.
/// Files in object storage get a URL signed for this attempt, valid for the job's queue timeout
/// plus its run timeout (capped by what the store allows). A store that cannot sign is an error:
/// the attempt is published later.
pub async fn job_message(
    storage: &Storage,
    job: &JobRow,
    files: &[FileRow],
    lease: Duration,
) -> io::Result<JobMessage> {
    let params = match &job.params {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let valid_for = url_lifetime(job);
    let mut refs = Vec::with_capacity(files.len());
    for file in files {
        refs.push(file_ref(storage, file, valid_for).await?);
    }
    let mut message = JobMessage {
        version: PROTOCOL_VERSION,
        job_id: job.id.into(),
        model: job.model.clone(),
        params,
        attempt: u32::try_from(job.attempt).unwrap_or(1),
        files: refs,
        lease_ms: Some(lease::millis(lease)),
        heartbeat_interval_ms: Some(lease::millis(lease::heartbeat_interval(lease))),
    };
    // The oldest version that describes the files: workers of version 1 keep working while
    // every input is on the volume.
    message.version = message.required_version();
    Ok(message)
}

fn url_lifetime(job: &JobRow) -> Duration {
    let millis = job.queue_timeout_ms.saturating_add(job.run_timeout_ms);
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX)).min(MAX_SIGNED_URL)
}

async fn file_ref(storage: &Storage, file: &FileRow, valid_for: Duration) -> io::Result<FileRef> {
    let owner = Owner::parse(&file.owner).expect("owners are validated before they are stored");
    let sha256 = Sha256Hex::from_stored(&file.sha256);
    let (path, object) = match storage.backend(&StoreName::from_stored(&file.store))? {
        Backend::Volume(_) => (Some(Volume::blob_relative_path(&owner, &sha256)), None),
        Backend::Object(backend) => {
            let expires_at = OffsetDateTime::now_utc() + valid_for;
            let url = backend.signed_url(&owner, &sha256, valid_for).await?;
            let object = ObjectRef {
                store: backend.name().to_string(),
                key: backend.blob_key(&owner, &sha256).to_string(),
                url,
                expires_at,
            };
            (None, Some(object))
        }
    };
    Ok(FileRef {
        id: file.id.into(),
        name: file.name.clone(),
        path,
        object,
        size: u64::try_from(file.size).unwrap_or_default(),
        sha256: file.sha256.clone(),
        content_type: file.content_type.clone(),
    })
}
