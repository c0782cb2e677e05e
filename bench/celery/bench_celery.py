"""The Celery peer of baton-bench.

As a Celery app (``celery -A bench_celery worker``) it serves one no-op task on its own queue. As
a script (``python bench_celery.py run --mode inline|ref --n N --procs P``) it submits N tasks
from P client processes, waits for every result and prints one JSON line with, per task, when it
was submitted and when the worker finished it (both Unix seconds on this host).

Configuration comes from the environment: BENCH_CELERY_BROKER (AMQP URL), BENCH_CELERY_QUEUE
(queue and exchange name, unique per run) and BENCH_CELERY_QUEUE_TYPE (``quorum``, as Baton's
queues, or ``classic``).

Settings that matter for the comparison: publisher confirms on (``confirm_publish``), persistent
task messages (Celery's default), JSON serialisation, the ``rpc://`` result backend (results go
back over RabbitMQ to the submitting process; nothing is stored), default prefetch.
"""

import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import struct
import sys
import time

from celery import Celery
from celery.worker.consumer import delayed_delivery
from kombu import Exchange, Queue

BROKER = os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672/%2f")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "baton-bench.celery")
QUEUE_TYPE = os.environ.get("BENCH_CELERY_QUEUE_TYPE", "quorum")

# No task uses countdown or ETA. With quorum queues Celery would otherwise declare its global
# delayed-delivery exchanges and queues, which would outlive the run on a shared RabbitMQ.
delayed_delivery.DelayedDelivery.include_if = lambda self, consumer: False

app = Celery("bench_celery", broker=BROKER, backend="rpc://")
app.conf.update(
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
    task_queues=[
        Queue(
            QUEUE,
            Exchange(QUEUE, type="direct", durable=True),
            routing_key=QUEUE,
            durable=True,
            queue_arguments={"x-queue-type": QUEUE_TYPE},
        )
    ],
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(payload):
    """The model: does nothing with its input; returns when it ran."""
    return time.time()


def reference(process, index, size):
    """A ~300-byte JSON reference to a file on a shared volume, as a real client would send."""
    digest = hashlib.sha256(struct.pack("<QQ", process, index)).hexdigest()
    ref = {
        "path": f"blobs/default/{digest[:2]}/{digest[2:4]}/{digest}",
        "sha256": digest,
        "size": size,
        "content_type": "application/octet-stream",
        "name": "input",
    }
    text = json.dumps(ref, separators=(",", ":"))
    ref["pad"] = "x" * max(0, 300 - len(text) - 9)
    return json.dumps(ref, separators=(",", ":"))


def client(mode, process, count, size, timeout, barrier, results):
    try:
        # The first call connects and proves a worker is consuming.
        noop.apply_async(args=["warm-up"]).get(timeout=120)
        content = bytearray(os.urandom(size)) if mode == "inline" else None
        barrier.wait()
        sent = []
        errors = 0
        for index in range(count):
            submitted = time.time()
            if mode == "inline":
                # Distinct content per task, encoded as a client must before sending.
                content[:16] = struct.pack("<QQ", process, index)
                payload = base64.b64encode(content).decode("ascii")
            else:
                payload = reference(process, index, size)
            try:
                sent.append((submitted, noop.apply_async(args=[payload])))
            except Exception as error:  # noqa: BLE001 - counted and reported
                errors += 1
                print(f"publish failed: {error}", file=sys.stderr)
        samples = []
        for submitted, result in sent:
            try:
                samples.append((submitted, float(result.get(timeout=timeout))))
            except Exception as error:  # noqa: BLE001
                errors += 1
                print(f"result failed: {error}", file=sys.stderr)
        results.put({"samples": samples, "errors": errors})
    except Exception as error:  # noqa: BLE001
        barrier.abort()
        results.put({"samples": [], "errors": count, "failure": repr(error)})


def run(args):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(args.procs)
    results = context.Queue()
    shares = [args.n // args.procs + (1 if i < args.n % args.procs else 0) for i in range(args.procs)]
    processes = [
        context.Process(
            target=client,
            args=(args.mode, i, share, args.size, args.timeout, barrier, results),
        )
        for i, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    collected = [results.get(timeout=args.timeout + 180) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    samples = [sample for part in collected for sample in part["samples"]]
    failures = [part["failure"] for part in collected if "failure" in part]
    print(
        json.dumps(
            {
                "mode": args.mode,
                "procs": args.procs,
                "size": args.size,
                "samples": samples,
                "errors": sum(part["errors"] for part in collected),
                "failures": failures,
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="submit tasks and report timings as JSON")
    run_parser.add_argument("--mode", choices=["inline", "ref"], required=True)
    run_parser.add_argument("--n", type=int, required=True)
    run_parser.add_argument("--procs", type=int, default=4)
    run_parser.add_argument("--size", type=int, default=1 << 20)
    run_parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    run(args)


if __name__ == "__main__":
    main()
