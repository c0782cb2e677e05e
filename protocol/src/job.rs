//! The job message Baton publishes to a model's queue.

use std::{fmt, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PROTOCOL_VERSION;

/// One attempt at running a job, as published to the model's queue.
///
/// Published as a persistent message with `content_type: application/json`, `message_id` equal
/// to `"{job_id}:{attempt}"` and `reply_to` naming the queue that takes this job's
/// [`WorkerEvent`](crate::WorkerEvent)s. The same attempt may be delivered more than once
/// (at-least-once delivery); events carry the attempt so that Baton can ignore duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobMessage {
    /// Protocol version of this message: 1 when every file is on the shared volume (so that
    /// workers of version 1 keep working), 2 when any file is in object storage; see
    /// [`JobMessage::required_version`]. Workers accept every version up to their own
    /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
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

    /// The lowest protocol version that describes this message's files: 1 when every file is
    /// on the shared volume only, [`PROTOCOL_VERSION`] when any is in object storage (or is
    /// malformed, so that a worker of version 1 does not misread it).
    pub fn required_version(&self) -> u32 {
        let volume_only = self
            .files
            .iter()
            .all(|file| file.path.is_some() && file.object.is_none());
        if volume_only { 1 } else { PROTOCOL_VERSION }
    }
}

/// A reference to an input file: on the shared volume (`path`) or in object storage (`object`),
/// exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("oneOf" = [{"required": ["path"]}, {"required": ["object"]}]))]
pub struct FileRef {
    /// The file's identifier; `GET /v1/files/{id}` describes it.
    pub id: Uuid,
    /// The input's name: the name of the multipart part it was uploaded in.
    pub name: String,
    /// Present when the file is on the shared volume: its path relative to the root of the
    /// volume, with `/` separators. It never starts with `/` and never contains `..`; join it to
    /// the worker's mount point. Always present in version 1 messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Present when the file is in object storage (version 2): where to fetch it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// Size of the file in bytes. A worker should refuse a file whose size differs.
    pub size: u64,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// Media type sniffed from the file's bytes (falling back to the client's hint).
    pub content_type: String,
}

/// Where an object-stored input lives, and a signed URL to read it without credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectRef {
    /// The object store as Baton names it: `s3://bucket/prefix` or `az://container/prefix`
    /// (no trailing slash). Workers that read with credentials of their own build a client for it.
    pub store: String,
    /// The object's full key in the bucket or container (the store's prefix included).
    pub key: String,
    /// A pre-signed HTTPS (or, against an emulator, HTTP) URL answering a plain `GET` with the
    /// object's bytes, minted for this attempt. A bearer secret: never log it.
    pub url: String,
    /// When `url` stops working (RFC 3339, UTC). A worker that finds it expired, or expiring
    /// within a few seconds, before it reports `started` gives the message back, and Baton
    /// publishes the attempt again with a fresh URL.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub expires_at: OffsetDateTime,
}

/// Where a [`FileRef`]'s bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'a> {
    /// On the shared volume, at this safe relative path.
    Volume(&'a str),
    /// In object storage.
    Object(&'a ObjectRef),
}

/// Why a [`FileRef`] cannot be located; a worker fails the attempt with `invalid_reference`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationError {
    /// Neither `path` nor `object` is present.
    Missing,
    /// Both `path` and `object` are present.
    Ambiguous,
    /// `path` could escape the volume (see [`is_safe_path`]).
    UnsafePath,
}

impl fmt::Display for LocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "has neither a `path` nor an `object`",
            Self::Ambiguous => "has both a `path` and an `object`",
            Self::UnsafePath => "has an unsafe path",
        })
    }
}

impl std::error::Error for LocationError {}

impl FileRef {
    /// Where the bytes are: exactly one of `path` (which must be safe) and `object`.
    pub fn location(&self) -> Result<Location<'_>, LocationError> {
        match (&self.path, &self.object) {
            (Some(path), None) if is_safe_path(path) => Ok(Location::Volume(path)),
            (Some(_), None) => Err(LocationError::UnsafePath),
            (None, Some(object)) => Ok(Location::Object(object)),
            (None, None) => Err(LocationError::Missing),
            (Some(_), Some(_)) => Err(LocationError::Ambiguous),
        }
    }
}

/// Whether `path` is a safe relative path: no root, no `..`, no empty or `.` segments, no
/// backslashes or NUL bytes.
pub fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: Option<&str>, object: Option<ObjectRef>) -> FileRef {
        FileRef {
            id: Uuid::nil(),
            name: "input".into(),
            path: path.map(Into::into),
            object,
            size: 1,
            sha256: "00".into(),
            content_type: "text/plain".into(),
        }
    }

    fn object() -> ObjectRef {
        ObjectRef {
            store: "s3://bucket/prefix".into(),
            key: "prefix/blobs/default/ab/cd/abcd".into(),
            url: "https://bucket.example/prefix/blobs/default/ab/cd/abcd?X-Amz-Signature=00".into(),
            expires_at: time::macros::datetime!(2026-12-03 20:00 UTC),
        }
    }

    fn message(files: Vec<FileRef>) -> JobMessage {
        JobMessage {
            version: 1,
            job_id: Uuid::nil(),
            model: "m".into(),
            params: Map::new(),
            attempt: 1,
            files,
            lease_ms: None,
            heartbeat_interval_ms: None,
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
        assert!(is_safe_path("blobs/default/ab/cd/abcd"));
        for bad in ["", "/etc/passwd", "blobs/../../etc", "blobs//x", "./x", "a\\b", "a\0b"] {
            assert!(!is_safe_path(bad), "{bad:?} must be rejected");
            assert_eq!(file(Some(bad), None).location(), Err(LocationError::UnsafePath));
        }
    }

    #[test]
    fn a_file_is_located_by_exactly_one_of_path_and_object() {
        assert_eq!(file(Some("blobs/x"), None).location(), Ok(Location::Volume("blobs/x")));
        let stored = file(None, Some(object()));
        assert_eq!(stored.location(), Ok(Location::Object(&object())));
        assert_eq!(file(None, None).location(), Err(LocationError::Missing));
        assert_eq!(
            file(Some("blobs/x"), Some(object())).location(),
            Err(LocationError::Ambiguous)
        );
    }

    #[test]
    fn version_1_is_required_only_while_every_file_is_on_the_volume() {
        let volume = file(Some("blobs/x"), None);
        let stored = file(None, Some(object()));
        assert_eq!(message(vec![]).required_version(), 1);
        assert_eq!(message(vec![volume.clone(), volume.clone()]).required_version(), 1);
        assert_eq!(message(vec![volume.clone(), stored]).required_version(), 2);
        assert_eq!(message(vec![file(None, None)]).required_version(), 2);
    }

    #[test]
    fn a_volume_file_serializes_as_in_version_1_and_an_object_file_without_path() {
        let volume = serde_json::to_value(file(Some("blobs/x"), None)).unwrap();
        assert_eq!(volume["path"], "blobs/x");
        assert!(volume.get("object").is_none(), "no `object` key for a volume file");

        let stored = serde_json::to_value(file(None, Some(object()))).unwrap();
        assert!(stored.get("path").is_none(), "no `path` key for an object file");
        assert_eq!(stored["object"]["expires_at"], "2026-12-03T20:00:00Z");
        let back: FileRef = serde_json::from_value(stored).unwrap();
        assert_eq!(back.object, Some(object()));
    }
}
