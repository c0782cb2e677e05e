"""One test environment against the real `baton serve`, Postgres and RabbitMQ: its own database,
queue prefix and temporary volume, all removed afterwards, and the workers started in it. Needs:

    BATON_BIN            the `baton` binary (default: debug/baton under CARGO_TARGET_DIR, else
                         under target/ in the repository)
    BATON_TEST_AMQP_URL  default amqp://guest:guest@127.0.0.1:5672/%2f
    BATON_TEST_PGHOST / BATON_TEST_PGPORT / BATON_TEST_PGUSER
                         default 127.0.0.1 / 5432 / postgres (passwordless, for psql)
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Callable

import pika
import pytest

from processes import Process

EXAMPLE = Path(__file__).resolve().parents[2]
REPO = EXAMPLE.parent.parent
# The entry point the README and deployments use.
WORKER = EXAMPLE / "worker.py"
AMQP_URL = os.environ.get("BATON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
PGHOST = os.environ.get("BATON_TEST_PGHOST", "127.0.0.1")
PGPORT = os.environ.get("BATON_TEST_PGPORT", "5432")
PGUSER = os.environ.get("BATON_TEST_PGUSER", "postgres")
MODEL = "example-py"
DEADLINE = 30.0


def psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(
        ["psql", "-h", PGHOST, "-p", PGPORT, "-U", PGUSER, "-d", database,
         "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
        check=True,
        capture_output=True,
        text=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode_multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = f"----baton-test-{uuid.uuid4().hex}"
    out = bytearray()
    for name, value in fields.items():
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode()
        out += value.encode() + b"\r\n"
    for name, filename, data in files:
        out += (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: text/plain\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"

class Baton:
    """One test environment: database, queue prefix, volume, `baton serve` and workers."""

    def __init__(self, tmp: Path, **settings: str):
        # Cargo reads a relative CARGO_TARGET_DIR from where it runs: the repository root.
        target = REPO / (os.environ.get("CARGO_TARGET_DIR") or "target")
        binary = os.environ.get("BATON_BIN") or str(target / "debug" / "baton")
        if not Path(binary).is_file():
            pytest.fail(f"the baton binary {binary} is missing: build it (cargo build -p baton-broker) "
                        "or set BATON_BIN")
        run_id = uuid.uuid4().hex[:12]
        self.tmp = tmp
        self.db_name = f"baton_pytest_{run_id}"
        self.prefix = f"tpy{run_id}."
        self.storage = tmp / "volume"
        self.storage.mkdir()
        self.base = f"http://127.0.0.1:{free_port()}"
        self.models: set[str] = set()
        self.workers: list[Process] = []
        psql(f'CREATE DATABASE "{self.db_name}"')
        env = dict(os.environ)
        env.update(
            BATON_DATABASE_URL=f"postgres://{PGUSER}@{PGHOST}:{PGPORT}/{self.db_name}",
            BATON_DATABASE_POOL_SIZE="4",
            BATON_AMQP_URL=AMQP_URL,
            BATON_QUEUE_PREFIX=self.prefix,
            BATON_STORAGE_DIR=str(self.storage),
            BATON_LISTEN=self.base.removeprefix("http://"),
            BATON_DISPATCH_POLL="200ms",
            BATON_RECONCILE_INTERVAL="200ms",
            BATON_SHUTDOWN_TIMEOUT="5s",
            BATON_LOG="info",
            BATON_AUTH="off",
        )
        env.update(settings)
        self.server = Process("baton", [binary, "serve"], env, tmp / "baton.log")
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.server.alive(), f"baton exited at start\n{self.server.describe()}"
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        pytest.fail(f"baton did not become ready\n{self.server.describe()}")

    # -- workers

    def start_worker(self, model: str = MODEL, **env_extra: str) -> Process:
        worker = self.launch_worker(model, **env_extra)
        # Consuming before the test goes on, so which worker takes a job is predictable.
        worker.wait_for_log("worker consuming", deadline=20)
        return worker

    def launch_worker(self, model: str = MODEL, **env_extra: str) -> Process:
        """A worker process for `model`, without waiting for it to consume."""
        self.models.add(model)
        env = dict(os.environ)
        env.update(
            BATON_AMQP_URL=AMQP_URL,
            BATON_STORAGE_DIR=str(self.storage),
            BATON_WORKER_MODEL=model,
            BATON_QUEUE_PREFIX=self.prefix,
            BATON_WORKER_PREFETCH="2",
            BATON_WORKER_SHUTDOWN_TIMEOUT="5s",
            # One cache directory per worker process.
            BATON_CACHE_DIR=str(self.tmp / f"cache-{len(self.workers)}"),
            PYTHONUNBUFFERED="1",
        )
        env.update(env_extra)
        index = len(self.workers)
        worker = Process(
            f"worker {index} ({model})", [sys.executable, str(WORKER)], env, self.tmp / f"worker-{index}-{model}.log"
        )
        self.workers.append(worker)
        return worker

    def describe(self) -> str:
        return "\n".join([self.server.describe(), *(w.describe() for w in self.workers)])

    # -- HTTP

    def submit(self, files: list[tuple[str, str, bytes]], model: str = MODEL, params: dict | None = None,
               **fields: str) -> dict:
        self.models.add(model)
        fields = {"model": model, **fields}
        if params is not None:
            fields["params"] = json.dumps(params)
        body, content_type = encode_multipart(fields, files)
        request = urllib.request.Request(
            f"{self.base}/v1/jobs", data=body, method="POST", headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202, response.status
            return json.load(response)

    def job(self, job_id: str) -> dict:
        with urllib.request.urlopen(f"{self.base}/v1/jobs/{job_id}", timeout=10) as response:
            return json.load(response)

    def timeline(self, job_id: str) -> list[dict]:
        with urllib.request.urlopen(f"{self.base}/v1/jobs/{job_id}/events", timeout=10) as response:
            return json.load(response)["events"]

    def cancel(self, job_id: str) -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.base}/v1/jobs/{job_id}/cancel", data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def wait_for(self, job_id: str, statuses: set[str], deadline: float = DEADLINE,
                 until=lambda job: True) -> dict:
        end = time.monotonic() + deadline
        job = self.job(job_id)
        while job["status"] not in statuses or not until(job):
            if time.monotonic() > end:
                pytest.fail(
                    f"job {job_id} is {job['status']} after {deadline}s, expected {statuses}: "
                    f"{json.dumps(job)}\n{self.describe()}"
                )
            time.sleep(0.05)
            job = self.job(job_id)
        return job

    # -- AMQP

    def amqp(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(AMQP_URL))

    def job_queue(self, model: str = MODEL) -> str:
        return f"{self.prefix}jobs.{model}"

    def publish(self, queue: str, bodies: list[bytes], arguments: dict,
                properties: pika.BasicProperties | None = None) -> None:
        """Publishes persistent messages to `queue` with confirms, as a worker would."""
        properties = properties or pika.BasicProperties(content_type="application/json", delivery_mode=2)
        connection = self.amqp()
        try:
            channel = connection.channel()
            channel.queue_declare(queue, durable=True, arguments=arguments)
            channel.confirm_delivery()
            for body in bodies:
                channel.basic_publish("", queue, body, properties, mandatory=True)
        finally:
            connection.close()

    def replace_job_message(self, model: str, job_id: str, rewrite: Callable[[dict], list[dict]]) -> None:
        """Takes Baton's message for `job_id` off the model's queue and publishes, with the same
        properties, the messages `rewrite` makes of it instead: what an older or a newer Baton, or
        a repeated publish, would have queued."""
        queue = self.job_queue(model)
        end = time.monotonic() + 10
        while True:
            try:
                if self.ready_messages(queue) == 1:
                    break
            except pika.exceptions.AMQPError:  # not declared yet
                pass
            assert time.monotonic() < end, "Baton did not publish the job"
            time.sleep(0.05)
        connection = self.amqp()
        try:
            channel = connection.channel()
            method, properties, body = channel.basic_get(queue)
            message = json.loads(body)
            assert message["job_id"] == job_id, message
            channel.confirm_delivery()
            for replacement in rewrite(message):
                channel.basic_publish("", queue, json.dumps(replacement).encode(), properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
        finally:
            connection.close()

    def wait_for_worker_topology(self, deadline: float = 20) -> None:
        """Waits until Baton declared its events queue and control exchange (passive declarations)."""
        end = time.monotonic() + deadline
        connection = self.amqp()
        try:
            for declare in (lambda ch: ch.queue_declare(f"{self.prefix}events", passive=True),
                            lambda ch: ch.exchange_declare(f"{self.prefix}control", passive=True)):
                while True:
                    try:
                        declare(connection.channel())  # a failed passive declaration closes its channel
                        break
                    except pika.exceptions.ChannelClosedByBroker:
                        assert time.monotonic() < end, f"Baton did not declare its queues\n{self.describe()}"
                        time.sleep(0.05)
        finally:
            connection.close()

    def ready_messages(self, queue: str) -> int:
        connection = self.amqp()
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()

    def close(self) -> None:
        # All at once: each takes up to a second to notice.
        for worker in self.workers:
            if worker.alive():
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers:
            worker.stop()
        self.server.stop()
        try:
            psql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            connection = self.amqp()
            try:
                channel = connection.channel()
                queues = [f"{self.prefix}events", f"{self.prefix}dead", *(self.job_queue(m) for m in self.models)]
                for queue in queues:
                    channel.queue_delete(queue)
                for exchange in (f"{self.prefix}dead-letter", f"{self.prefix}control"):
                    channel.exchange_delete(exchange)
            finally:
                connection.close()


def kinds(timeline: list[dict]) -> list[str]:
    return [e["kind"] for e in timeline]


def timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as the API writes it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def worker_id_of(process: Process) -> str:
    match = re.search(r"worker=(\S+)", process.text())
    assert match, process.describe()
    return match.group(1)
