//! Building the job message: references only, never bytes.

use std::time::Duration;

use baton_protocol::{FileRef, JobMessage, PROTOCOL_VERSION, lease};
use serde_json::{Map, Value};

use crate::{
    db::{files::FileRow, jobs::JobRow},
    domain::{Owner, Sha256Hex},
    storage::Storage,
};

/// The message for the job's current attempt. `files` are the job's rows in position order;
/// `lease` is Baton's lease, which workers cannot know otherwise and must heartbeat well within.
pub fn job_message(job: &JobRow, files: &[FileRow], lease: Duration) -> JobMessage {
    let params = match &job.params {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let mut message = JobMessage {
        version: PROTOCOL_VERSION,
        job_id: job.id.into(),
        model: job.model.clone(),
        params,
        attempt: u32::try_from(job.attempt).unwrap_or(1),
        files: files.iter().map(file_ref).collect(),
        lease_ms: Some(lease::millis(lease)),
        heartbeat_interval_ms: Some(lease::millis(lease::heartbeat_interval(lease))),
    };
    // The oldest version that can describe the files, so that workers of version 1 keep
    // working while every input is on the volume.
    message.version = message.required_version();
    message
}

fn file_ref(file: &FileRow) -> FileRef {
    let owner = Owner::parse(&file.owner).expect("owners are validated before they are stored");
    let sha256 = Sha256Hex::from_stored(&file.sha256);
    FileRef {
        id: file.id.into(),
        name: file.name.clone(),
        path: Some(Storage::blob_relative_path(&owner, &sha256)),
        object: None,
        size: u64::try_from(file.size).unwrap_or_default(),
        sha256: file.sha256.clone(),
        content_type: file.content_type.clone(),
    }
}
