"""What jobs end as: verified results, permanent and retryable failures, newer message versions."""

from __future__ import annotations

import hashlib
import json
import re

from harness import MODEL, kinds, worker_id_of


def expected_text(name: str, data: bytes) -> dict:
    text = data.decode()
    return {
        "name": name,
        "size": len(data),
        "sha256_verified": True,
        "kind": "text",
        "lines": text.count("\n"),
        "words": len(text.split()),
        "chars": len(text),
    }


FIRST = b"hello baton\nsecond line here\n"
SECOND = "one two three\n\n  four\tfive  \nno newline at the end, caf\u00e9".encode()


def test_text_job_succeeds_with_verified_counts(baton, worker):
    submitted = baton.submit([("first", "first.txt", FIRST), ("second", "second.txt", SECOND)],
                             params={"lang": "en"})
    assert submitted["status"] == "queued"
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", json.dumps(job)
    assert job["attempt"] == 1
    assert job["error"] is None
    # Unique per process start: hostname/pid-xxxx.
    assert re.fullmatch(rf"[^/]+/{worker.proc.pid}-[0-9a-f]{{4}}", job["worker"]), job["worker"]
    assert job["worker"] == worker_id_of(worker)

    result = job["result"]
    assert result["model"] == MODEL
    inputs = result["inputs"]
    assert [i["name"] for i in inputs] == ["first", "second"]
    for got, (name, data) in zip(inputs, [("first", FIRST), ("second", SECOND)]):
        content_type = got.pop("content_type")
        assert content_type.startswith("text/plain")
        assert got == expected_text(name, data)
    assert (inputs[0]["lines"], inputs[0]["words"]) == (2, 5)
    assert (inputs[1]["lines"], inputs[1]["words"]) == (3, 11)
    # What Baton recorded is what the worker hashed.
    recorded = {f["name"]: f["sha256"] for f in job["files"]}
    assert recorded == {"first": hashlib.sha256(FIRST).hexdigest(), "second": hashlib.sha256(SECOND).hexdigest()}
    timeline = kinds(baton.timeline(job["id"]))
    assert timeline.index("dispatched") < timeline.index("started") < timeline.index("succeeded"), timeline


def test_invalid_params_fail_without_retry(baton, worker):
    submitted = baton.submit([("doc", "doc.txt", b"x\n")], params={"sleep_ms": "soon"})
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert job["status"] == "failed", json.dumps(job)
    assert job["attempt"] == 1
    assert job["error"]["code"] == "invalid_params"
    assert job["result"] is None
    assert "retried" not in kinds(baton.timeline(job["id"]))


def test_retryable_failures_are_retried_by_baton_up_to_max_attempts(baton):
    model = "example-py-retry"
    submitted = baton.submit([("doc", "gone.txt", b"this file will vanish\n")], model=model, max_attempts="3")
    # Remove the blob before any worker for this model runs: every attempt finds it missing,
    # which is transient (a network volume may be late), so Baton runs the job again, each time
    # as a new attempt published after a backoff.
    sha = submitted["files"][0]["sha256"]
    blob = next(baton.storage.glob(f"blobs/*/{sha[:2]}/{sha[2:4]}/{sha}"))
    blob.unlink()
    baton.start_worker(model)
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert job["status"] == "failed", json.dumps(job)
    assert job["attempt"] == job["max_attempts"] == 3
    assert job["error"]["code"] == "input_unavailable"
    timeline = baton.timeline(job["id"])
    assert [e["attempt"] for e in timeline if e["kind"] == "started"] == [1, 2, 3]
    retried = [e for e in timeline if e["kind"] == "retried"]
    assert [(e["detail"]["reason"], e["detail"]["next_attempt"]) for e in retried] == [("failed", 2), ("failed", 3)]
    assert kinds(timeline)[-1] == "failed"


def test_a_newer_job_message_version_fails_as_unsupported(baton):
    model = "example-py-version"
    submitted = baton.submit([("doc", "v2.txt", b"from the future\n")], model=model)

    def as_a_newer_baton_would_publish_it(message: dict) -> list[dict]:
        assert message["version"] == 1
        return [{**message, "version": 3, "files": {"renamed": "in version 3"}}]

    baton.replace_job_message(model, submitted["id"], as_a_newer_baton_would_publish_it)

    worker = baton.start_worker(model)
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert job["status"] == "failed", json.dumps(job)
    assert (job["attempt"], job["error"]["code"]) == (1, "unsupported_version")
    assert "retried" not in kinds(baton.timeline(job["id"]))
    assert worker.alive()
