"""Attempts that end before the model does: SIGTERM, a client cancelling, a worker crashing."""

from __future__ import annotations

import json
import signal

from harness import kinds, worker_id_of


def test_sigterm_lets_the_running_job_finish(baton):
    model = "example-py-stop"
    worker = baton.start_worker(model, BATON_WORKER_SHUTDOWN_TIMEOUT="20s")
    submitted = baton.submit([("doc", "slow.txt", b"slow job\n")], model=model, params={"sleep_ms": 2000})
    running = baton.wait_for(submitted["id"], {"running", "succeeded", "failed"})
    assert running["status"] == "running", json.dumps(running)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=30) == 0, worker.describe()
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"}, deadline=10)
    assert job["status"] == "succeeded", json.dumps(job)
    assert job["attempt"] == 1
    assert job["result"]["inputs"][0]["lines"] == 1
    assert "worker stopped" in worker.text()


def test_cancelling_a_running_job_stops_the_worker_running_it(baton):
    model = "example-py-cancel"
    worker = baton.start_worker(model, BATON_WORKER_PREFETCH="1")
    submitted = baton.submit([("doc", "long.txt", b"a long job\n")], model=model, params={"sleep_ms": 60_000})
    job_id = submitted["id"]
    baton.wait_for(job_id, {"running"})

    status, body = baton.cancel(job_id)
    assert (status, body["status"]) == (200, "cancelled"), body
    # The worker was told on the control exchange, stopped the model (which noticed at once
    # rather than after its minute of "inference") and reported nothing.
    worker.wait_for_log(f"job {job_id} attempt 1: Baton asked to stop it (cancelled)")
    worker.wait_for_log(f"job {job_id} attempt 1: the model stopped; its outcome is discarded")
    assert baton.job(job_id)["status"] == "cancelled"
    timeline = kinds(baton.timeline(job_id))
    assert "cancelled" in timeline and "succeeded" not in timeline, timeline
    # The job message was acked: the worker's single slot is free for the next job.
    after = baton.submit([("doc", "next.txt", b"next\n")], model=model)
    assert baton.wait_for(after["id"], {"succeeded", "failed"})["status"] == "succeeded"
    status, body = baton.cancel(job_id)
    assert (status, body["error"]["code"]) == (409, "job_finished")


def test_a_worker_crash_hands_the_job_back_through_baton(baton):
    model = "example-py-crash"
    crashing = baton.start_worker(model)
    submitted = baton.submit([("doc", "crash.txt", b"crash\n")], model=model, params={"sleep_ms": 60_000})
    job_id = submitted["id"]
    baton.wait_for(job_id, {"running"})
    crashing.kill()
    # RabbitMQ dead-letters the unacked message to Baton, which ends the attempt (worker_lost)
    # and publishes attempt 2; RabbitMQ itself never redelivers it.
    other = baton.start_worker(model)
    job = baton.wait_for(job_id, {"running"}, until=lambda j: j["attempt"] == 2)
    assert job["worker"] == worker_id_of(other)
    retried = [e for e in baton.timeline(job_id) if e["kind"] == "retried"]
    assert [e["detail"]["reason"] for e in retried] == ["worker_lost"], retried
    assert baton.cancel(job_id)[0] == 200
    other.wait_for_log(f"job {job_id} attempt 2: Baton asked to stop it (cancelled)")


def test_sigterm_reports_a_job_acked_at_the_deadline_as_stopped(baton):
    model = "example-py-shutdown"
    worker = baton.start_worker(model, BATON_WORKER_ACK_DEADLINE="300ms", BATON_WORKER_SHUTDOWN_TIMEOUT="500ms")
    submitted = baton.submit([("doc", "endless.txt", b"endless\n")], model=model, params={"sleep_ms": 60_000},
                             max_attempts="1")
    job_id = submitted["id"]
    worker.wait_for_log(f"job {job_id} attempt 1 still running at the ack deadline")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=15) == 0, worker.describe()
    # Its message was acked, so nothing went back to Baton: without the report Baton would wait
    # for the lease (60 s here) to run out.
    job = baton.wait_for(job_id, {"succeeded", "failed"}, deadline=10)
    assert (job["status"], job["error"]["code"]) == ("failed", "worker_stopped"), json.dumps(job)
