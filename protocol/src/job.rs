//! The job message Baton publishes to a model's queue.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// One attempt at running a job, as published to the model's queue.
///
/// Published as a persistent message with `content_type: application/json`, `message_id` equal
/// to `"{job_id}:{attempt}"` and `reply_to` naming the queue that takes this job's
/// [`WorkerEvent`](crate::WorkerEvent)s. The same attempt may be delivered more than once
/// (at-least-once delivery); events carry the attempt so that Baton can ignore duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobMessage {
    /// Protocol version of this message ([`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)).
    pub version: u32,
    /// The job's identifier (a UUIDv7).
    pub job_id: Uuid,
    /// The model the job is for; equal to the model part of the queue name.
    pub model: String,
    /// Parameters for the model, exactly as the client submitted them (a JSON object).
    pub params: Map<String, Value>,
    /// Attempt number, starting at 1. Every event about this delivery must echo it.
    #[schemars(range(min = 1))]
    pub attempt: u32,
    /// The job's input files, in the order the client sent them.
    pub files: Vec<FileRef>,
}

/// A reference to an input file on the shared volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileRef {
    /// The file's identifier; `GET /v1/files/{id}` describes it.
    pub id: Uuid,
    /// The input's name: the name of the multipart part it was uploaded in.
    pub name: String,
    /// Path of the file relative to the root of the shared volume, with `/` separators. It never
    /// starts with `/` and never contains `..`; join it to the worker's mount point.
    pub path: String,
    /// Size of the file in bytes. A worker should refuse a file whose size differs.
    pub size: u64,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// Media type sniffed from the file's bytes (falling back to the client's hint).
    pub content_type: String,
}

impl FileRef {
    /// Whether [`FileRef::path`] is a safe relative path: no root, no `..`, no empty or `.`
    /// segments, no backslashes or NUL bytes.
    pub fn has_safe_path(&self) -> bool {
        !self.path.is_empty()
            && !self.path.contains(['\\', '\0'])
            && self
                .path
                .split('/')
                .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> FileRef {
        FileRef {
            id: Uuid::nil(),
            name: "input".into(),
            path: path.into(),
            size: 1,
            sha256: "00".into(),
            content_type: "text/plain".into(),
        }
    }

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert!(file("blobs/default/ab/cd/abcd").has_safe_path());
        for bad in ["", "/etc/passwd", "blobs/../../etc", "blobs//x", "./x", "a\\b", "a\0b"] {
            assert!(!file(bad).has_safe_path(), "{bad:?} must be rejected");
        }
    }
}
