//! The timeline entry (`EventView`): one schema per kind Baton writes, each with its `detail`.
//!
//! The kinds are [`TimelineKind`]'s; the match below makes a new kind need an entry here.

use std::borrow::Cow;

use serde_json::json;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{KnownFormat, ObjectBuilder, Ref, RefOr, Schema, SchemaFormat, Type, schema::OneOfBuilder},
};

use super::schemas::{Failure, nullable};
use crate::{domain::TimelineKind, http::views::EventView};

fn integer(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some(description))
}

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

fn failure() -> Ref {
    Ref::from_schema_name(Failure::name())
}

/// What a kind means, and its `detail` (`None`: always null).
fn kind(kind: TimelineKind) -> (&'static str, Option<RefOr<Schema>>) {
    let retry_detail = |reason: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("reason", string(reason))
            .required("reason")
            .property("next_attempt", integer("The attempt that follows."))
            .required("next_attempt")
            .property("delay_ms", integer("How long before the next attempt is published."))
            .property("error", failure())
    };
    match kind {
        TimelineKind::Received => (
            "Baton began reading the submission (at the time its request arrived).",
            None,
        ),
        TimelineKind::Stored => (
            "The files were stored and the job committed.",
            Some(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("files", integer("How many files the job has."))
                    .property("bytes", integer("Their total size."))
                    .property(
                        "deduplicated",
                        integer("How many of them were already stored and not written again."),
                    )
                    .required("files")
                    .required("bytes")
                    .required("deduplicated")
                    .into(),
            ),
        ),
        TimelineKind::Dispatched => ("RabbitMQ confirmed the attempt's message.", None),
        TimelineKind::Redispatched => (
            "The attempt was dispatched but never started while its queue was empty: it is published again.",
            None,
        ),
        TimelineKind::Started => ("`worker` started the attempt.", None),
        TimelineKind::Heartbeat => (
            "`worker` renewed the attempt's lease; one entry per attempt, updated in place.",
            Some(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("count", integer("Heartbeats received for this attempt."))
                    .required("count")
                    .into(),
            ),
        ),
        TimelineKind::Succeeded => ("`worker` reported success; the job's `result` holds the output.", None),
        TimelineKind::Failed => (
            "The job failed: no attempts left, a failure that retrying cannot fix, or (with a bare \
             failure as detail) no worker would take it.",
            Some(
                OneOfBuilder::new()
                    .item(
                        ObjectBuilder::new()
                            .schema_type(Type::Object)
                            .property(
                                "reason",
                                string("`failed` (the worker reported it), `lease_expired` or `worker_lost`."),
                            )
                            .required("reason")
                            .property("error", failure())
                            .required("error")
                            .property("attempts", integer("Attempts used."))
                            .required("attempts"),
                    )
                    .item(failure())
                    .into(),
            ),
        ),
        TimelineKind::Retried => (
            "The attempt ended and another is queued: after a retryable failure, or by `POST .../retry`.",
            Some(retry_detail("`failed`, `lease_expired`, `worker_lost`, or `requested` (a client's retry).").into()),
        ),
        TimelineKind::Returned => (
            "RabbitMQ gave the unstarted attempt back (a worker rejected it or went away); it is published again.",
            Some(retry_detail("Why RabbitMQ dead-lettered the message, e.g. `rejected`.").into()),
        ),
        TimelineKind::TimedOut => (
            "The job failed by a timeout: `queue_timeout` or `run_timeout`.",
            Some(failure().into()),
        ),
        TimelineKind::Cancelled => ("A client cancelled the job.", Some(failure().into())),
        TimelineKind::Ignored => (
            "A worker event that changed nothing (stale, duplicate, or from a worker that does not \
             hold the attempt). Heartbeats are not recorded.",
            Some(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("event", string("The event's type: `started`, `succeeded` or `failed`."))
                    .required("event")
                    .property("reason", string("Why it was ignored."))
                    .required("reason")
                    .into(),
            ),
        ),
        TimelineKind::FileMissing => (
            "A cleanup pass found an input's bytes missing from the volume.",
            Some(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("input", string("The input's name."))
                    .required("input")
                    .property("sha256", string("The missing blob's SHA-256."))
                    .required("sha256")
                    .property("message", string("What happened."))
                    .required("message")
                    .into(),
            ),
        ),
    }
}

impl PartialSchema for EventView {
    fn schema() -> RefOr<Schema> {
        let mut variants = OneOfBuilder::new().description(Some(
            "One entry of a job's timeline. `kind` says what happened; `detail`'s shape depends on it.",
        ));
        for variant in TimelineKind::ALL {
            let name = variant.as_str();
            let (meaning, detail) = kind(variant);
            let detail = detail.unwrap_or_else(|| ObjectBuilder::new().schema_type(Type::Null).into());
            variants = variants.item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .title(Some(name))
                    .description(Some(meaning))
                    .property(
                        "at",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
                    )
                    .property(
                        "kind",
                        ObjectBuilder::new().schema_type(Type::String).enum_values(Some([name])),
                    )
                    .property(
                        "attempt",
                        ObjectBuilder::new()
                            .schema_type(nullable(Type::Integer))
                            .description(Some("The attempt the entry is about; null for the job as a whole.")),
                    )
                    .property(
                        "worker",
                        ObjectBuilder::new()
                            .schema_type(nullable(Type::String))
                            .description(Some("The worker involved, if any.")),
                    )
                    .property("detail", detail)
                    .required("at")
                    .required("kind")
                    .required("attempt")
                    .required("worker")
                    .required("detail"),
            );
        }
        variants.into()
    }
}

impl ToSchema for EventView {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EventView")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Failure::name().into(), Failure::schema()));
    }
}

/// An example timeline, for `GET /v1/jobs/{id}/events`.
pub fn example() -> serde_json::Value {
    json!({
        "job_id": "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b",
        "events": [
            {"at": "2026-11-23T10:00:00Z", "kind": "received", "attempt": null, "worker": null, "detail": null},
            {"at": "2026-11-23T10:00:01Z", "kind": "stored", "attempt": null, "worker": null,
             "detail": {"files": 1, "bytes": 52_341, "deduplicated": 0}},
            {"at": "2026-11-23T10:00:01Z", "kind": "dispatched", "attempt": 1, "worker": null, "detail": null},
            {"at": "2026-11-23T10:00:02Z", "kind": "started", "attempt": 1, "worker": "gpu-3/812-x7k2", "detail": null},
            {"at": "2026-11-23T10:00:32Z", "kind": "heartbeat", "attempt": 1, "worker": "gpu-3/812-x7k2",
             "detail": {"count": 2}},
            {"at": "2026-11-23T10:00:40Z", "kind": "succeeded", "attempt": 1, "worker": "gpu-3/812-x7k2",
             "detail": null}
        ]
    })
}
