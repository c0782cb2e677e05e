"""End-to-end tests of the Python worker against the real `baton serve`, Postgres and RabbitMQ.

Two Baton instances serve this module: one with the default lease, one with a 2 s lease for the
lease tests. Each gets its own database, queue prefix and temporary volume, all removed
afterwards; tests that start workers use their own model (so their own job queue) unless they
only need a plain worker. Needs:

    BATON_BIN            the `baton` binary (default: debug/baton under CARGO_TARGET_DIR, else
                         under target/ in the repository)
    BATON_TEST_AMQP_URL  default amqp://guest:guest@127.0.0.1:5672/%2f
    BATON_TEST_PGHOST / BATON_TEST_PGPORT / BATON_TEST_PGUSER
                         default 127.0.0.1 / 5432 / postgres (passwordless, for psql)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Callable

import pika
import pytest

from worker import EVENTS_QUEUE_ARGUMENTS, job_queue_arguments

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WORKER = HERE / "worker.py"
AMQP_URL = os.environ.get("BATON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
PGHOST = os.environ.get("BATON_TEST_PGHOST", "127.0.0.1")
PGPORT = os.environ.get("BATON_TEST_PGPORT", "5432")
PGUSER = os.environ.get("BATON_TEST_PGUSER", "postgres")
MODEL = "example-py"
DEADLINE = 30.0


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

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        self.proc.kill()
        self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, needle: str, deadline: float = 10) -> None:
        end = time.monotonic() + deadline
        while needle not in self.text():
            if time.monotonic() > end:
                pytest.fail(f"{needle!r} not in the log of {self.name} after {deadline}s\n{self.describe()}")
            time.sleep(0.05)

    def describe(self) -> str:
        return f"--- {self.name} log ---\n{tail(self.log)}"


class Proxy:
    """A TCP proxy in front of RabbitMQ whose connections the test can cut, as a network failure
    would."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.target = (parts.hostname, parts.port or 5672)
        self.server = socket.create_server(("127.0.0.1", 0))
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.server.getsockname()[1]}" if userinfo else f"127.0.0.1:{self.server.getsockname()[1]}"
        self.url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        self.sockets: list[socket.socket] = []
        # Cut sockets are only shut down, and closed at the end: closing them while a pipe thread
        # may still use them could let it act on a new connection that reused the descriptor.
        self.cut_sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Breaks every connection made so far; new ones still get through."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
            self.cut_sockets += sockets
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()
        self.cut()
        time.sleep(0.1)  # let the pipe threads see their sockets shut
        for s in self.cut_sockets:
            s.close()


class Baton:
    """One test environment: database, queue prefix, volume, `baton serve` and workers."""

    def __init__(self, tmp: Path, **settings: str):
        # Cargo reads a relative CARGO_TARGET_DIR from where it runs: the repository root.
        target = REPO / (os.environ.get("CARGO_TARGET_DIR") or "target")
        binary = os.environ.get("BATON_BIN") or str(target / "debug" / "baton")
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
            BATON_RECONCILE_INTERVAL="200ms",
            BATON_SHUTDOWN_TIMEOUT="5s",
            BATON_LOG="info",
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

    def start_worker(self, model: str = MODEL, script: Path = WORKER, **env_extra: str) -> Process:
        self.models.add(model)
        env = dict(os.environ)
        env.update(
            BATON_AMQP_URL=AMQP_URL,
            BATON_STORAGE_DIR=str(self.storage),
            BATON_WORKER_MODEL=model,
            BATON_QUEUE_PREFIX=self.prefix,
            BATON_WORKER_PREFETCH="2",
            BATON_WORKER_SHUTDOWN_TIMEOUT="5s",
            PYTHONUNBUFFERED="1",
        )
        env.update(env_extra)
        index = len(self.workers)
        worker = Process(
            f"worker {index} ({model})", [sys.executable, str(script)], env, self.tmp / f"worker-{index}-{model}.log"
        )
        self.workers.append(worker)
        if script == WORKER:
            # Consuming before the test goes on, so which worker takes a job is predictable.
            worker.wait_for_log("worker consuming", deadline=20)
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


@pytest.fixture(scope="module")
def baton(tmp_path_factory):
    env = Baton(tmp_path_factory.mktemp("baton"))
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def short_lease(tmp_path_factory):
    """A Baton whose leases run out 2 s after the last heartbeat."""
    env = Baton(tmp_path_factory.mktemp("baton-lease"), BATON_LEASE="2s")
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


def kinds(timeline: list[dict]) -> list[str]:
    return [e["kind"] for e in timeline]


def timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as the API writes it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def worker_id_of(process: Process) -> str:
    match = re.search(r"worker=(\S+)", process.text())
    assert match, process.describe()
    return match.group(1)


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


def test_a_newer_job_message_version_fails_as_unsupported(baton):
    model = "example-py-version"
    submitted = baton.submit([("doc", "v2.txt", b"from the future\n")], model=model)

    def as_a_newer_baton_would_publish_it(message: dict) -> list[dict]:
        assert message["version"] == 1
        return [{**message, "version": 2, "files": {"renamed": "in version 2"}}]

    baton.replace_job_message(model, submitted["id"], as_a_newer_baton_would_publish_it)

    worker = baton.start_worker(model)
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert job["status"] == "failed", json.dumps(job)
    assert (job["attempt"], job["error"]["code"]) == (1, "unsupported_version")
    assert "retried" not in kinds(baton.timeline(job["id"]))
    assert worker.alive()


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


def test_the_minimal_worker_in_the_protocol_readme_follows_the_protocol(baton, tmp_path):
    readme = (REPO / "protocol" / "README.md").read_text()
    section = readme.split("## A minimal worker with pika", 1)[1]
    script = tmp_path / "minimal_worker.py"
    script.write_text(section.split("```python\n", 1)[1].split("\n```", 1)[0])
    model = "readme-example"
    worker = baton.start_worker(model, script=script)

    first = baton.submit([("doc", "a.txt", b"minimal\n")], model=model, params={"sleep_ms": 60_000})
    running = baton.wait_for(first["id"], {"running"})
    assert re.fullmatch(rf"[^/]+/{worker.proc.pid}-[0-9a-f]{{4}}", running["worker"]), running["worker"]
    assert baton.cancel(first["id"])[0] == 200
    # It stopped the cancelled job and acked it, so its single slot takes the next one.
    second = baton.submit([("doc", "b.txt", b"minimal\n")], model=model)
    job = baton.wait_for(second["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", json.dumps(job)
    assert job["result"] == {"inputs": [{"name": "doc", "sha256_verified": True}]}
    assert baton.job(first["id"])["status"] == "cancelled"

    # Not a job: rejected, dead-lettered to Baton and dropped; the worker carries on.
    baton.publish(baton.job_queue(model), [b"not a job"], job_queue_arguments(baton.prefix))
    third = baton.submit([("doc", "c.txt", b"after\n")], model=model, params={"sleep_ms": 0})
    assert baton.wait_for(third["id"], {"succeeded", "failed"})["status"] == "succeeded"
    assert worker.alive(), worker.describe()
