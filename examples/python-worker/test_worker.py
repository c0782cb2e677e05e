"""End-to-end tests of the Python worker against the real `baton serve`, Postgres and RabbitMQ.

Each test module run gets a fresh database, a unique queue prefix and a temporary volume; all
three are removed afterwards. Needs:

    BATON_BIN            the `baton` binary (default: target/debug/baton under the repository)
    BATON_TEST_AMQP_URL  default amqp://guest:guest@127.0.0.1:5672/%2f
    BATON_TEST_PGHOST / BATON_TEST_PGPORT / BATON_TEST_PGUSER
                         default 127.0.0.1 / 5432 / postgres (passwordless, for psql)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pika
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WORKER = HERE / "worker.py"
AMQP_URL = os.environ.get("BATON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
PGHOST = os.environ.get("BATON_TEST_PGHOST", "127.0.0.1")
PGPORT = os.environ.get("BATON_TEST_PGPORT", "5432")
PGUSER = os.environ.get("BATON_TEST_PGUSER", "postgres")
MODEL = "example-py"
DEADLINE = 60.0
QUORUM = {"x-queue-type": "quorum"}


# --- helpers --------------------------------------------------------------------------------------


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


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


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


class Process:
    """A child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name = name
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def describe(self) -> str:
        return f"--- {self.name} log ---\n{tail(self.log)}"


class Baton:
    """One test environment: database, queue prefix, volume, `baton serve` and workers."""

    def __init__(self, tmp: Path):
        binary = os.environ.get("BATON_BIN") or str(REPO / "target" / "debug" / "baton")
        if not Path(binary).is_file():
            pytest.fail(f"the baton binary {binary} is missing: build it (cargo build -p baton-broker) or set BATON_BIN")
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
            BATON_SHUTDOWN_TIMEOUT="5s",
            BATON_LOG="info",
        )
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
            time.sleep(0.2)
        pytest.fail(f"baton did not become ready\n{self.server.describe()}")

    # -- workers

    def start_worker(self, model: str = MODEL, **env_extra: str) -> Process:
        self.models.add(model)
        env = dict(os.environ)
        env.update(
            BATON_AMQP_URL=AMQP_URL,
            BATON_STORAGE_DIR=str(self.storage),
            BATON_WORKER_MODEL=model,
            BATON_QUEUE_PREFIX=self.prefix,
            BATON_WORKER_PREFETCH="2",
            BATON_WORKER_SHUTDOWN_TIMEOUT="20s",
            PYTHONUNBUFFERED="1",
        )
        env.update(env_extra)
        index = len(self.workers)
        worker = Process(
            f"worker {model}", [sys.executable, str(WORKER)], env, self.tmp / f"worker-{index}-{model}.log"
        )
        self.workers.append(worker)
        return worker

    def describe(self) -> str:
        return "\n".join([self.server.describe(), *(w.describe() for w in self.workers)])

    # -- HTTP

    def submit(self, files: list[tuple[str, str, bytes]], model: str = MODEL, params: dict | None = None) -> dict:
        self.models.add(model)
        fields = {"model": model}
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

    def wait_for(self, job_id: str, statuses: set[str], deadline: float = DEADLINE) -> dict:
        end = time.monotonic() + deadline
        job = self.job(job_id)
        while job["status"] not in statuses:
            if time.monotonic() > end:
                pytest.fail(
                    f"job {job_id} is {job['status']} after {deadline}s, expected {statuses}: "
                    f"{json.dumps(job)}\n{self.describe()}"
                )
            time.sleep(0.1)
            job = self.job(job_id)
        return job

    # -- AMQP

    def amqp(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(AMQP_URL))

    def publish(self, queue: str, bodies: list[bytes]) -> None:
        """Publishes persistent messages to `queue` with confirms, as a worker would."""
        connection = self.amqp()
        try:
            channel = connection.channel()
            channel.queue_declare(queue, durable=True, arguments=QUORUM)
            channel.confirm_delivery()
            for body in bodies:
                channel.basic_publish(
                    "", queue, body,
                    pika.BasicProperties(content_type="application/json", delivery_mode=2),
                    mandatory=True,
                )
        finally:
            connection.close()

    def ready_messages(self, queue: str) -> int:
        connection = self.amqp()
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.server.stop()
        try:
            psql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            connection = self.amqp()
            try:
                channel = connection.channel()
                for queue in [f"{self.prefix}events", *(f"{self.prefix}jobs.{m}" for m in self.models)]:
                    channel.queue_delete(queue)
            finally:
                connection.close()


@pytest.fixture(scope="module")
def baton(tmp_path_factory):
    env = Baton(tmp_path_factory.mktemp("baton"))
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def worker(baton):
    return baton.start_worker()


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


# --- tests ----------------------------------------------------------------------------------------

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
    assert job["worker"].endswith(f"/{worker.proc.pid}")

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


def test_duplicate_and_stale_events_change_nothing(baton, worker):
    submitted = baton.submit([("doc", "doc.txt", b"a b c\n")])
    done = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", json.dumps(done)

    def event(attempt: int, **kind) -> bytes:
        return json.dumps({"version": 1, "job_id": done["id"], "attempt": attempt,
                           "worker": "forger/1", **kind}).encode()

    baton.publish(f"{baton.prefix}events", [
        # The same attempt's success again, with another result: a duplicate.
        event(1, type="succeeded", result={"forged": True}),
        # Late events about the same attempt.
        event(1, type="started"),
        event(1, type="failed", error={"code": "model_error", "message": "late"}, retryable=True),
        # An attempt that never existed.
        event(2, type="succeeded", result={"forged": True}),
    ])
    # Baton consumes its events queue in order: once a job submitted after those events were
    # confirmed has succeeded, the forged ones have been handled.
    barrier = baton.submit([("doc", "barrier.txt", b"barrier\n")])
    assert baton.wait_for(barrier["id"], {"succeeded", "failed"})["status"] == "succeeded"

    after = baton.job(done["id"])
    for key in ("status", "attempt", "result", "error", "worker", "started_at", "finished_at"):
        assert after[key] == done[key], key
    assert after["result"]["inputs"][0]["words"] == 3


def test_malformed_job_message_is_rejected(baton, worker):
    queue = f"{baton.prefix}jobs.{MODEL}"
    baton.publish(queue, [b"this is not json", b'{"version": 1, "job_id": "not-a-uuid"}'])
    job = baton.submit([("doc", "after.txt", b"still working\n")])
    assert baton.wait_for(job["id"], {"succeeded", "failed"})["status"] == "succeeded"
    assert worker.alive()
    # Dropped, not requeued: nothing comes back to the queue.
    for _ in range(5):
        assert baton.ready_messages(queue) == 0
        time.sleep(0.2)
    assert worker.log.read_text().count("rejecting a malformed job message") == 2


def test_invalid_params_fail_without_retry(baton, worker):
    submitted = baton.submit([("doc", "doc.txt", b"x\n")], params={"sleep_ms": "soon"})
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert job["status"] == "failed", json.dumps(job)
    assert job["attempt"] == 1
    assert job["error"]["code"] == "invalid_params"
    assert job["result"] is None


def test_retryable_failures_are_retried_up_to_max_attempts(baton):
    model = "example-py-retry"
    submitted = baton.submit([("doc", "gone.txt", b"this file will vanish\n")], model=model)
    # Remove the blob before any worker for this model runs: every attempt finds it missing,
    # which is transient (a network volume may be late), so Baton retries.
    sha = submitted["files"][0]["sha256"]
    blob = next(baton.storage.glob(f"blobs/*/{sha[:2]}/{sha[2:4]}/{sha}"))
    blob.unlink()
    baton.start_worker(model)
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert job["status"] == "failed", json.dumps(job)
    assert job["attempt"] == job["max_attempts"] == 3
    assert job["error"]["code"] == "input_unavailable"


def test_sigterm_lets_the_running_job_finish(baton):
    model = "example-py-stop"
    worker = baton.start_worker(model)
    submitted = baton.submit([("doc", "slow.txt", b"slow job\n")], model=model, params={"sleep_ms": 2000})
    running = baton.wait_for(submitted["id"], {"running", "succeeded", "failed"})
    assert running["status"] == "running", json.dumps(running)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=30) == 0, worker.describe()
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"}, deadline=10)
    assert job["status"] == "succeeded", json.dumps(job)
    assert job["result"]["inputs"][0]["lines"] == 1
    assert "worker stopped" in worker.log.read_text()
