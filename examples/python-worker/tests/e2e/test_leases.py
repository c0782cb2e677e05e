"""Leases: heartbeats at the interval the job message gives, the ack deadline, and what a lost
connection, a crash or missing heartbeats do to an attempt."""

from __future__ import annotations

import json

from harness import AMQP_URL, kinds, timestamp, worker_id_of
from processes import Proxy


def test_the_worker_heartbeats_at_the_interval_in_the_job_message(short_lease):
    model = "example-py-long"
    # Baton's lease is 2 s, so its messages ask for a heartbeat every 666 ms. The worker's own
    # setting (only for messages that do not say) would never heartbeat within this test.
    worker = short_lease.start_worker(model, BATON_WORKER_HEARTBEAT="1h")
    submitted = short_lease.submit([("doc", "long.txt", b"longer than a lease\n")], model=model,
                                   params={"sleep_ms": 4000})
    job = short_lease.wait_for(submitted["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", json.dumps(job)
    assert job["attempt"] == 1, "the lease held on heartbeats alone"
    worker.wait_for_log(f"job {job['id']} attempt 1 received; heartbeat every 666 ms")
    timeline = short_lease.timeline(job["id"])
    assert "retried" not in kinds(timeline), timeline
    [heartbeats] = [e for e in timeline if e["kind"] == "heartbeat"]
    assert heartbeats["worker"] == worker_id_of(worker)
    # `at` is the last heartbeat: none came sooner than the interval after the one before.
    [started] = [e for e in timeline if e["kind"] == "started"]
    ran = timestamp(heartbeats["at"]) - timestamp(started["at"])
    assert 3 <= heartbeats["detail"]["count"] <= ran / 0.666 + 1, (ran, heartbeats)


def test_a_job_acked_at_the_deadline_survives_a_lost_connection(short_lease):
    model = "example-py-reconnect"
    proxy = Proxy(AMQP_URL)
    try:
        worker = short_lease.start_worker(model, BATON_AMQP_URL=proxy.url, BATON_WORKER_HEARTBEAT="500ms",
                                          BATON_WORKER_ACK_DEADLINE="300ms")
        submitted = short_lease.submit([("doc", "cut.txt", b"cut\n")], model=model, params={"sleep_ms": 3000})
        job_id = submitted["id"]
        worker.wait_for_log(f"job {job_id} attempt 1 still running at the ack deadline")
        proxy.cut()
        # The attempt is still the worker's (its message is acked and its lease holds): it keeps
        # running, and heartbeats and the outcome go out on the new connection.
        job = short_lease.wait_for(job_id, {"succeeded", "failed"})
        assert (job["status"], job["attempt"]) == ("succeeded", 1), json.dumps(job)
        assert worker.text().count("worker consuming") == 2, worker.describe()
        assert "retried" not in kinds(short_lease.timeline(job_id))
    finally:
        proxy.close()


def test_an_attempt_without_heartbeats_loses_its_lease_and_its_worker_stops_it(short_lease):
    model = "example-py-silent"
    submitted = short_lease.submit([("doc", "silent.txt", b"no heartbeats\n")], model=model,
                                   params={"sleep_ms": 60_000}, max_attempts="1")
    job_id = submitted["id"]

    def as_an_older_baton_would_publish_it(message: dict) -> list[dict]:
        assert (message["lease_ms"], message["heartbeat_interval_ms"]) == (2000, 666)
        return [{k: v for k, v in message.items() if k not in ("lease_ms", "heartbeat_interval_ms")}]

    # Without an interval in the message the worker falls back to its own setting: an hour.
    short_lease.replace_job_message(model, job_id, as_an_older_baton_would_publish_it)
    worker = short_lease.start_worker(model, BATON_WORKER_HEARTBEAT="1h")
    worker.wait_for_log(f"job {job_id} attempt 1 received; heartbeat every 3600000 ms")
    job = short_lease.wait_for(job_id, {"succeeded", "failed"}, deadline=15)
    assert job["status"] == "failed", json.dumps(job)
    assert (job["attempt"], job["error"]["code"]) == (1, "lease_expired")
    worker.wait_for_log(f"job {job_id} attempt 1: Baton asked to stop it (lease_expired)")
    worker.wait_for_log(f"job {job_id} attempt 1: the model stopped; its outcome is discarded")


def test_a_job_past_the_ack_deadline_is_acked_early_and_guarded_by_its_lease(short_lease):
    model = "example-py-ack"
    early = short_lease.start_worker(model, BATON_WORKER_HEARTBEAT="1s", BATON_WORKER_ACK_DEADLINE="300ms")
    submitted = short_lease.submit([("doc", "ack.txt", b"acked early\n")], model=model, params={"sleep_ms": 2500})
    job_id = submitted["id"]
    early.wait_for_log(f"job {job_id} attempt 1 still running at the ack deadline: acked early")
    # A crash now returns nothing to RabbitMQ (the message is acked): only the lease running out
    # tells Baton, which then runs attempt 2.
    early.kill()
    later = short_lease.start_worker(model, BATON_WORKER_HEARTBEAT="1s")
    job = short_lease.wait_for(job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", json.dumps(job)
    assert (job["attempt"], job["worker"]) == (2, worker_id_of(later))
    retried = [e for e in short_lease.timeline(job_id) if e["kind"] == "retried"]
    assert [e["detail"]["reason"] for e in retried] == ["lease_expired"], retried
    assert short_lease.ready_messages(f"{short_lease.prefix}dead") == 0
