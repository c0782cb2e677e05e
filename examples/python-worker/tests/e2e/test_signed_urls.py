"""Inputs in object storage, end to end with the real Baton: a job message whose signed URL has
expired is handed back before `started`, and Baton runs the attempt again at no cost."""

from __future__ import annotations

import json

from harness import kinds


def test_a_message_whose_signed_url_expired_is_handed_back_unstarted_and_runs_again(baton):
    model = "example-py-expired"
    submitted = baton.submit([("doc", "doc.txt", b"one two three\n")], model=model)

    def with_an_expired_url(message: dict) -> list[dict]:
        assert message["version"] == 1
        file = message["files"][0]
        path = file.pop("path")
        file["object"] = {
            "store": "s3://bucket/prefix",
            "key": f"prefix/{path}",
            # Never fetched: the worker must give the message back before trying.
            "url": "http://127.0.0.1:9/never-fetched",
            "expires_at": "2020-01-01T00:00:00Z",
        }
        return [{**message, "version": 2}]

    baton.replace_job_message(model, submitted["id"], with_an_expired_url)
    worker = baton.start_worker(model)
    worker.wait_for_log("has expired or is about to; handing the job back", deadline=20)
    # Baton publishes the attempt again (from its own records: the file on the volume).
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", json.dumps(job)
    assert job["attempt"] == 2
    assert job["attempts_used"] == 1, "the handed-back attempt did not use the budget"
    assert job["result"]["inputs"][0]["words"] == 3
    timeline = kinds(baton.timeline(job["id"]))
    assert "returned" in timeline and "retried" not in timeline, timeline
    assert timeline.count("started") == 1, "the handed-back attempt never started"
