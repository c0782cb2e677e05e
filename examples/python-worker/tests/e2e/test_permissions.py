"""The worker as a least-privilege RabbitMQ user: with exactly the permissions protocol/README.md
documents for its model it serves jobs (and waits for Baton's queues if it starts first); pointed
at another model's queue it is refused, and stops with a clear error instead of reconnecting."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from harness import REPO, kinds
from rabbitmq_users import worker_permissions, worker_user


def test_the_patterns_are_the_documented_ones():
    readme = (REPO / "protocol" / "README.md").read_text()
    configure, write, read = worker_permissions("baton.", "example")
    command = (f"rabbitmqctl set_permissions -p baton baton-worker-example \\\n"
               f"    '{configure}' \\\n    '{write}' \\\n    '{read}'")
    assert command in readme


def test_a_least_privilege_worker_completes_a_job_of_its_model(baton):
    model = "perm-own"
    baton.wait_for_worker_topology()
    with worker_user(baton.prefix, model) as user:
        worker = baton.start_worker(model, BATON_AMQP_URL=user.url)
        submitted = baton.submit([("input", "a.txt", b"least privilege\n")], model=model)
        job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
        assert job["status"] == "succeeded", f"{json.dumps(job)}\n{worker.describe()}"
        assert job["result"]["inputs"][0]["words"] == 2
        assert worker.stop() == 0, worker.describe()
    assert "ACCESS_REFUSED" not in worker.text() and "reconnecting" not in worker.text(), worker.describe()


def test_a_worker_pointed_at_another_models_queue_exits_with_access_refused(baton):
    other = "perm-other"
    submitted = baton.submit([("input", "a.txt", b"not yours\n")], model=other)
    baton.wait_for(submitted["id"], {"queued"}, until=lambda job: job["dispatched_at"] is not None)
    with worker_user(baton.prefix, "perm-mine") as user:
        worker = baton.launch_worker(other, BATON_AMQP_URL=user.url)
        try:
            status = worker.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker kept running after a refusal\n{worker.describe()}")
    text = worker.text()
    assert status == 1, worker.describe()
    queue = baton.job_queue(other)
    expected = f"RabbitMQ refused access (ACCESS_REFUSED - access to queue '{queue}' in vhost"
    errors = [line for line in text.splitlines() if "ERROR baton-worker:" in line]
    assert len(errors) == 1 and expected in errors[0] and user.name in errors[0], worker.describe()
    assert "Traceback" not in text and "reconnecting" not in text, worker.describe()

    # The other model's job is untouched: queued, never started, its message still there.
    job = baton.job(submitted["id"])
    assert (job["status"], job["attempt"], job["started_at"]) == ("queued", 1, None), json.dumps(job)
    assert "started" not in kinds(baton.timeline(submitted["id"]))
    assert baton.ready_messages(queue) == 1


def test_a_least_privilege_worker_waits_for_baton_to_declare_its_queues(baton):
    """On a prefix no Baton ever served, the worker may not declare the events queue: it reports it
    missing and tries again, until it appears (declared here as Baton would)."""
    prefix, model = f"tpyw{uuid.uuid4().hex[:12]}.", "perm-early"
    connection = baton.amqp()
    try:
        with worker_user(prefix, model) as user:
            worker = baton.launch_worker(model, BATON_QUEUE_PREFIX=prefix, BATON_AMQP_URL=user.url)
            worker.wait_for_log(f"NOT_FOUND - no queue '{prefix}events'", deadline=20)
            worker.wait_for_log("reconnecting", deadline=5)
            assert worker.alive(), worker.describe()
            channel = connection.channel()
            channel.queue_declare(f"{prefix}events", durable=True, arguments={"x-queue-type": "quorum"})
            channel.exchange_declare(f"{prefix}control", exchange_type="fanout", durable=True)
            worker.wait_for_log("worker consuming", deadline=20)
            assert worker.stop() == 0, worker.describe()
        assert "ERROR baton-worker" not in worker.text(), worker.describe()
    finally:
        channel = connection.channel()
        for queue in (f"{prefix}events", f"{prefix}jobs.{model}"):
            channel.queue_delete(queue)
        channel.exchange_delete(f"{prefix}control")
        connection.close()
