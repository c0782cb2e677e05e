//! The job message Baton publishes to a model's queue.

use std::time::Duration;

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
    /// Baton's lease (`BATON_LEASE`) in milliseconds: an attempt with no applied `started` or
    /// `heartbeat` for this long is lost. For logs and sanity checks; pace heartbeats by
    /// `heartbeat_interval_ms`. Always set by current Baton; absent in messages published by a
    /// Baton that predates the field (still queued during an upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub lease_ms: Option<u64>,
    /// How often to send a `heartbeat` for this attempt while it runs, in milliseconds: a third
    /// of Baton's lease, at most 10 000. Always set by current Baton; a message published by a
    /// Baton that predates the field lacks it: then heartbeat every 10 000 ms
    /// ([`HEARTBEAT_INTERVAL`](crate::HEARTBEAT_INTERVAL)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub heartbeat_interval_ms: Option<u64>,
}

impl JobMessage {
    /// The heartbeat interval this message asks for, if it says (a zero, which the schema
    /// forbids, counts as not saying: it would mean a busy loop).
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        self.heartbeat_interval_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }
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
    fn messages_without_heartbeat_fields_still_parse_and_fall_back() {
        let old = serde_json::json!({
            "version": 1, "job_id": Uuid::nil(), "model": "m", "params": {}, "attempt": 1, "files": []
        });
        let message: JobMessage = serde_json::from_value(old).unwrap();
        assert_eq!((message.lease_ms, message.heartbeat_interval()), (None, None));

        let current = JobMessage {
            lease_ms: Some(20_000),
            heartbeat_interval_ms: Some(6_666),
            ..message.clone()
        };
        let json = serde_json::to_value(&current).unwrap();
        assert_eq!(
            (json["lease_ms"].as_u64(), json["heartbeat_interval_ms"].as_u64()),
            (Some(20_000), Some(6_666))
        );
        let back: JobMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back.heartbeat_interval(), Some(Duration::from_millis(6_666)));

        let zero = JobMessage {
            heartbeat_interval_ms: Some(0),
            ..message
        };
        assert_eq!(zero.heartbeat_interval(), None);
    }

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert!(file("blobs/default/ab/cd/abcd").has_safe_path());
        for bad in ["", "/etc/passwd", "blobs/../../etc", "blobs//x", "./x", "a\\b", "a\0b"] {
            assert!(!file(bad).has_safe_path(), "{bad:?} must be rejected");
        }
    }
}
