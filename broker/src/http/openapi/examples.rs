//! Example bodies for the document, one per operation.

use serde_json::{Value, json};

const JOB_ID: &str = "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b";
const FILE_ID: &str = "0190f5e2-7b1d-7f00-9c4e-5a6b7c8d9e0f";

pub fn file() -> Value {
    json!({
        "id": FILE_ID,
        "job_id": JOB_ID,
        "name": "image",
        "filename": "cat.png",
        "size": 52_341,
        "content_type": "image/png",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "md5": "098f6bcd4621d373cade4e832627b4f6",
        "created_at": "2026-11-23T10:00:01Z",
        "content_url": format!("/v1/files/{FILE_ID}/content"),
    })
}

/// A job just submitted.
pub fn job() -> Value {
    json!({
        "id": JOB_ID,
        "status": "queued",
        "model": "resnet50",
        "params": {"threshold": 0.5},
        "attempt": 1,
        "attempts_used": 0,
        "max_attempts": 3,
        "queue_timeout_ms": 3_600_000,
        "run_timeout_ms": 7_200_000,
        "worker": null,
        "lease_expires_at": null,
        "heartbeat_at": null,
        "idempotency_key": "upload-2026-11-23-0001",
        "created_at": "2026-11-23T10:00:01Z",
        "updated_at": "2026-11-23T10:00:01Z",
        "queued_at": "2026-11-23T10:00:01Z",
        "dispatched_at": null,
        "started_at": null,
        "finished_at": null,
        "files": [file()],
        "result": null,
        "error": null,
    })
}

/// A job that finished.
pub fn finished_job() -> Value {
    let mut job = job();
    let fields = [
        ("status", json!("succeeded")),
        ("attempts_used", json!(1)),
        ("worker", json!("gpu-3/812-x7k2")),
        ("updated_at", json!("2026-11-23T10:00:40Z")),
        ("dispatched_at", json!("2026-11-23T10:00:01Z")),
        ("started_at", json!("2026-11-23T10:00:02Z")),
        ("heartbeat_at", json!("2026-11-23T10:00:32Z")),
        ("finished_at", json!("2026-11-23T10:00:40Z")),
        ("result", json!([{"label": "cat", "score": 0.97}])),
    ];
    for (key, value) in fields {
        job[key] = value;
    }
    job
}

pub fn cancelled_job() -> Value {
    let mut job = job();
    job["status"] = json!("cancelled");
    job["finished_at"] = json!("2026-11-23T10:00:05Z");
    job["updated_at"] = json!("2026-11-23T10:00:05Z");
    job["error"] = json!({"code": "cancelled", "message": "cancelled by the client"});
    job
}

pub fn retried_job() -> Value {
    let mut job = job();
    job["attempt"] = json!(2);
    job["queued_at"] = json!("2026-11-23T10:05:00Z");
    job["updated_at"] = json!("2026-11-23T10:05:00Z");
    job["error"] = json!({"code": "model_error", "message": "CUDA out of memory"});
    job
}

pub fn job_page() -> Value {
    json!({ "jobs": [finished_job()], "next_cursor": JOB_ID })
}

pub fn events() -> Value {
    super::timeline::example()
}

pub fn health() -> Value {
    json!({ "status": "ok" })
}

pub fn ready() -> Value {
    json!({ "status": "ready", "postgres": "ok", "storage": "ok", "rabbitmq": "connected" })
}

pub fn unready() -> Value {
    json!({ "status": "unready", "postgres": "unreachable", "storage": "ok", "rabbitmq": "connected" })
}

pub fn metrics() -> Value {
    json!("# TYPE baton_jobs gauge\nbaton_jobs{model=\"resnet50\",status=\"queued\"} 3\n")
}

/// A submission: one file part, `image`.
pub fn form() -> Value {
    json!({
        "model": "resnet50",
        "params": {"threshold": 0.5},
        "max_attempts": 3,
        "run_timeout": "2h",
        "image": "(the bytes of cat.png)",
    })
}
