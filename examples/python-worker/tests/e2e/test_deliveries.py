"""At-least-once delivery: repeated and stale events, malformed job messages, a second delivery of
a running attempt."""

from __future__ import annotations

import json
import time

from baton_worker.queues import EVENTS_QUEUE_ARGUMENTS, job_queue_arguments
from harness import kinds


def test_duplicate_and_stale_events_change_nothing(baton, worker):
    submitted = baton.submit([("doc", "doc.txt", b"a b c\n")])
    done = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", json.dumps(done)

    def event(attempt: int, worker_id: str = "forger/1-0000", **kind) -> bytes:
        return json.dumps({"version": 1, "job_id": done["id"], "attempt": attempt,
                           "worker": worker_id, **kind}).encode()

    baton.publish(f"{baton.prefix}events", [
        # The same attempt's success again, from its own worker, with another result: a duplicate.
        event(1, done["worker"], type="succeeded", result={"forged": True}),
        # Late events about the same attempt, from another worker.
        event(1, type="started"),
        event(1, type="heartbeat"),
        event(1, type="failed", error={"code": "model_error", "message": "late"}, retryable=True),
        # An attempt that never existed.
        event(2, type="succeeded", result={"forged": True}),
    ], EVENTS_QUEUE_ARGUMENTS)
    # Baton consumes its events queue in order: once a job submitted after those events were
    # confirmed has succeeded, the forged ones have been handled.
    barrier = baton.submit([("doc", "barrier.txt", b"barrier\n")])
    assert baton.wait_for(barrier["id"], {"succeeded", "failed"})["status"] == "succeeded"

    after = baton.job(done["id"])
    for key in ("status", "attempt", "result", "error", "worker", "started_at", "finished_at"):
        assert after[key] == done[key], key
    assert after["result"]["inputs"][0]["words"] == 3
    assert worker.alive()


def test_malformed_job_message_is_rejected(baton, worker):
    queue = baton.job_queue()
    baton.publish(queue, [b"this is not json", b'{"version": 1, "job_id": "not-a-uuid"}'],
                  job_queue_arguments(baton.prefix))
    job = baton.submit([("doc", "after.txt", b"still working\n")])
    assert baton.wait_for(job["id"], {"succeeded", "failed"})["status"] == "succeeded"
    assert worker.alive()
    # Rejected: dead-lettered to Baton, which drops them; nothing comes back to the job queue.
    baton.server.wait_for_log("dropping an unreadable dead-lettered message")
    for _ in range(5):
        assert baton.ready_messages(queue) == 0
        assert baton.ready_messages(f"{baton.prefix}dead") == 0
        time.sleep(0.1)
    assert worker.text().count("rejecting a malformed job message") == 2


def test_a_second_delivery_of_a_running_attempt_is_dropped_and_the_first_reports(baton):
    model = "example-py-duplicate"
    submitted = baton.submit([("doc", "twice.txt", b"delivered twice\n")], model=model,
                             params={"sleep_ms": 1500})
    job_id = submitted["id"]
    # Two copies of attempt 1, as when Baton publishes an attempt again.
    baton.replace_job_message(model, job_id, lambda message: [message, message])
    worker = baton.start_worker(model, BATON_WORKER_PREFETCH="2")
    job = baton.wait_for(job_id, {"succeeded", "failed"})
    assert (job["status"], job["attempt"]) == ("succeeded", 1), json.dumps(job)
    worker.wait_for_log(f"job {job_id} attempt 1 is already running here; dropping the duplicate")
    assert worker.text().count(f"job {job_id} attempt 1 received") == 1, worker.describe()
    timeline = kinds(baton.timeline(job_id))
    assert timeline.count("started") == 1, timeline
    # Acked, not handed back: a returned copy of a running attempt would have cost it.
    assert "returned" not in timeline and "retried" not in timeline, timeline
    assert baton.ready_messages(baton.job_queue(model)) == 0
