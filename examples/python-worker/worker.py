#!/usr/bin/env python3
"""A Baton worker in Python, speaking the protocol described in protocol/README.md.

It consumes `{prefix}jobs.{model}`, checks every input file on its (read-only) mount of the
shared volume, runs the model in a thread, reports `started` and the outcome to the queue named
in the job's `reply_to` property with publisher confirms, and acks the job only once the outcome
is confirmed.

The "model" here does real work without weights: it streams every input, checks its SHA-256
against the one Baton recorded and, for text, counts lines, words and characters. The optional
parameter `sleep_ms` adds a delay standing in for inference time.

Configuration (the same variables as the Rust example worker):

    BATON_AMQP_URL                 amqp://guest:guest@127.0.0.1:5672/%2f
    BATON_STORAGE_DIR              ./data   the worker's mount of the volume
    BATON_WORKER_MODEL             example-py
    BATON_QUEUE_PREFIX             baton.
    BATON_WORKER_PREFETCH          1        jobs held and run at once
    BATON_WORKER_ID                hostname/pid
    BATON_WORKER_SHUTDOWN_TIMEOUT  30s      how long SIGTERM waits for running jobs
    BATON_LOG                      info     debug, info, warning or error
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
import queue
import re
import signal
import socket
import stat
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pika
import pika.exceptions

PROTOCOL_VERSION = 1
READ_BUFFER = 1 << 20
MODEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# Exactly these arguments: RabbitMQ refuses a declaration that differs from Baton's.
QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}

log = logging.getLogger("baton-worker")


# --- configuration ------------------------------------------------------------------------------


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Config:
    amqp_url: str
    storage_dir: str
    model: str
    queue_prefix: str
    prefetch: int
    worker_id: str
    shutdown_timeout: float

    @property
    def job_queue(self) -> str:
        return f"{self.queue_prefix}jobs.{self.model}"

    @property
    def events_queue(self) -> str:
        return f"{self.queue_prefix}events"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Config":
        env = dict(os.environ if env is None else env)
        model = env.get("BATON_WORKER_MODEL", "example-py")
        if not MODEL_PATTERN.fullmatch(model):
            raise ConfigError(
                f"invalid BATON_WORKER_MODEL {model!r}: must match [a-z0-9][a-z0-9._-]{{0,63}}"
            )
        prefetch_text = env.get("BATON_WORKER_PREFETCH", "1")
        try:
            prefetch = int(prefetch_text)
        except ValueError:
            prefetch = 0
        if not 1 <= prefetch <= 65535:
            raise ConfigError(
                f"invalid BATON_WORKER_PREFETCH {prefetch_text!r}: expected an integer from 1 to 65535"
            )
        timeout_text = env.get("BATON_WORKER_SHUTDOWN_TIMEOUT", "30s")
        match = re.fullmatch(r"(\d+)s", timeout_text)
        if not match:
            raise ConfigError(
                f"invalid BATON_WORKER_SHUTDOWN_TIMEOUT {timeout_text!r}: expected seconds such as 30s"
            )
        amqp_url = env.get("BATON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        if not amqp_url.startswith(("amqp://", "amqps://")):
            raise ConfigError("invalid BATON_AMQP_URL: expected an amqp:// or amqps:// URL")
        return cls(
            amqp_url=amqp_url,
            storage_dir=env.get("BATON_STORAGE_DIR", "./data"),
            model=model,
            queue_prefix=env.get("BATON_QUEUE_PREFIX", "baton."),
            prefetch=prefetch,
            worker_id=env.get("BATON_WORKER_ID") or f"{socket.gethostname() or 'worker'}/{os.getpid()}",
            shutdown_timeout=float(match.group(1)),
        )


# --- the job message ----------------------------------------------------------------------------


class MalformedMessage(Exception):
    """The delivery is not a job message at all: it is rejected without requeue."""


@dataclass(frozen=True)
class FileRef:
    id: str
    name: str
    path: str
    size: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class JobMessage:
    version: int
    job_id: str
    model: str
    params: dict[str, Any]
    attempt: int
    files: list[FileRef]


def _field(obj: dict, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in obj:
        raise MalformedMessage(f"{what}: missing field {key!r}")
    value = obj[key]
    # bool is an int in Python; JSON true is not a number.
    if isinstance(value, bool) and kind is not bool:
        raise MalformedMessage(f"{what}: field {key!r} has the wrong type")
    if not isinstance(value, kind):
        raise MalformedMessage(f"{what}: field {key!r} has the wrong type")
    return value


def _uuid(obj: dict, key: str, what: str) -> str:
    text = _field(obj, key, str, what)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise MalformedMessage(f"{what}: field {key!r} is not a UUID") from None


def _unsigned(obj: dict, key: str, what: str) -> int:
    value = _field(obj, key, int, what)
    if value < 0:
        raise MalformedMessage(f"{what}: field {key!r} is negative")
    return value


def parse_job(body: bytes) -> JobMessage:
    """Parses a job message, ignoring unknown fields (they may be added without a version bump)."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise MalformedMessage(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage("not a JSON object")
    files = []
    for index, item in enumerate(_field(obj, "files", list, "job")):
        what = f"files[{index}]"
        if not isinstance(item, dict):
            raise MalformedMessage(f"{what} is not an object")
        files.append(
            FileRef(
                id=_uuid(item, "id", what),
                name=_field(item, "name", str, what),
                path=_field(item, "path", str, what),
                size=_unsigned(item, "size", what),
                sha256=_field(item, "sha256", str, what),
                content_type=_field(item, "content_type", str, what),
            )
        )
    return JobMessage(
        version=_unsigned(obj, "version", "job"),
        job_id=_uuid(obj, "job_id", "job"),
        model=_field(obj, "model", str, "job"),
        params=_field(obj, "params", dict, "job"),
        attempt=_unsigned(obj, "attempt", "job"),
        files=files,
    )


# --- failures and inputs ------------------------------------------------------------------------


class JobError(Exception):
    """A failed attempt, reported to Baton and the client as `{code, message}`."""

    def __init__(self, code: str, message: str, retryable: bool):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable

    @classmethod
    def permanent(cls, code: str, message: str) -> "JobError":
        return cls(code, message, retryable=False)

    @classmethod
    def transient(cls, code: str, message: str) -> "JobError":
        return cls(code, message, retryable=True)


@dataclass
class Input:
    file: FileRef
    path: str


@dataclass
class Job:
    message: JobMessage
    inputs: list[Input]
    stopping: threading.Event = field(default_factory=threading.Event)


def is_safe_path(path: str) -> bool:
    """A plain relative path: no root, no `..`, no empty or `.` segments, no backslash or NUL."""
    if not path or "\\" in path or "\0" in path:
        return False
    return all(segment not in ("", ".", "..") for segment in path.split("/"))


def resolve_inputs(mount: str, files: list[FileRef]) -> list[Input]:
    """Maps file references to paths under the mount, refusing anything that could escape it or
    that differs from what Baton recorded."""
    root = os.path.realpath(mount)
    inputs = []
    for file in files:
        if not is_safe_path(file.path):
            raise JobError.permanent("invalid_reference", f"input {file.name!r} has an unsafe path")
        path = os.path.join(root, *file.path.split("/"))
        # Defence in depth: a symlink on the volume must not lead outside it.
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root:
            raise JobError.permanent(
                "invalid_reference", f"input {file.name!r} resolves outside the volume"
            )
        try:
            meta = os.stat(real)
        except OSError as e:
            # Possibly not yet visible on this node of a network volume: worth another attempt.
            raise JobError.transient(
                "input_unavailable", f"input {file.name!r} cannot be read: {e.strerror}"
            ) from None
        if not stat.S_ISREG(meta.st_mode) or meta.st_size != file.size:
            raise JobError.permanent(
                "input_mismatch",
                f"input {file.name!r} has {meta.st_size} bytes on the volume, expected {file.size}",
            )
        inputs.append(Input(file=file, path=real))
    return inputs


# --- the example model --------------------------------------------------------------------------


def is_text(content_type: str) -> bool:
    return (
        content_type.startswith("text/")
        or content_type.startswith("application/json")
        or "xml" in content_type
    )


class TextCounter:
    """Counts lines (newline-terminated), words (whitespace-separated) and characters of UTF-8
    text fed in chunks of any size; invalid bytes count as one replacement character each."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._in_word = False
        self.lines = 0
        self.words = 0
        self.chars = 0

    def feed(self, chunk: bytes, final: bool = False) -> None:
        text = self._decoder.decode(chunk, final)
        if not text:
            return
        self.lines += text.count("\n")
        self.chars += len(text)
        words = len(text.split())
        if words and self._in_word and not text[0].isspace():
            words -= 1  # a word that straddles the previous chunk
        self.words += words
        self._in_word = not text[-1].isspace()


def analyse(item: Input) -> dict[str, Any]:
    """Streams one input once: SHA-256 always, text counts when the content type is text."""
    hasher = hashlib.sha256()
    counter = TextCounter() if is_text(item.file.content_type) else None
    read = 0
    try:
        with open(item.path, "rb", buffering=0) as f:
            # The size seen through the open descriptor, not a second lookup of the path.
            if os.fstat(f.fileno()).st_size != item.file.size:
                raise JobError.permanent(
                    "input_mismatch", f"input {item.file.name!r} changed size on the volume"
                )
            while chunk := f.read(READ_BUFFER):
                read += len(chunk)
                hasher.update(chunk)
                if counter:
                    counter.feed(chunk)
    except OSError as e:
        raise JobError.transient(
            "input_unreadable", f"input {item.file.name!r}: {e.strerror}"
        ) from None
    if read != item.file.size or hasher.hexdigest() != item.file.sha256.lower():
        raise JobError.permanent(
            "checksum_mismatch", f"input {item.file.name!r} does not match its recorded SHA-256"
        )
    report: dict[str, Any] = {
        "name": item.file.name,
        "size": item.file.size,
        "content_type": item.file.content_type,
        "sha256_verified": True,
    }
    if counter:
        counter.feed(b"", final=True)
        report.update(kind="text", lines=counter.lines, words=counter.words, chars=counter.chars)
    else:
        report.update(kind="binary")
    return report


def example_model(job: Job) -> Any:
    params = job.message.params
    sleep_ms = params.get("sleep_ms", 0)
    if isinstance(sleep_ms, bool) or not isinstance(sleep_ms, int) or not 0 <= sleep_ms <= 3_600_000:
        raise JobError.permanent("invalid_params", "`sleep_ms` must be an integer from 0 to 3600000")
    inputs = [analyse(item) for item in job.inputs]
    if sleep_ms:
        time.sleep(sleep_ms / 1000)
    return {"model": job.message.model, "inputs": inputs}


def check_result(result: Any) -> None:
    """Refuses a result Baton could not store. An event Baton cannot apply is dropped and the job
    would never finish, so this becomes a permanent failure instead."""
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise JobError.permanent("invalid_result", f"the result is not JSON: {e}") from None
    # Postgres `jsonb` cannot hold U+0000 in a string.
    if _has_nul(result):
        raise JobError.permanent("invalid_result", "the result contains a NUL character (U+0000)")


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\0" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


# --- the runtime --------------------------------------------------------------------------------


@dataclass
class Outcome:
    session: int
    delivery_tag: int
    reply_to: str
    job_id: str
    attempt: int
    event: dict[str, Any]


class ReportFailed(Exception):
    pass


class Worker:
    """Consume → started → run (in a thread) → outcome with confirm → ack, reconnecting after
    failures. All AMQP calls happen on the main thread (pika connections are not thread-safe);
    model threads hand their outcomes back through a queue."""

    def __init__(self, config: Config, model: Callable[[Job], Any]):
        self.config = config
        self.model = model
        self.stopping = threading.Event()
        self.impatient = threading.Event()  # a second signal: do not wait for running jobs
        self.finished: queue.Queue[Outcome] = queue.Queue()
        self.running: dict[int, threading.Thread] = {}  # delivery tag -> thread
        self.session = 0
        self.failures = 0  # consecutive failed sessions, for the reconnection backoff
        self.consume_conn: pika.BlockingConnection | None = None
        self.publish_conn: pika.BlockingConnection | None = None
        self.consume_ch = None
        self.publish_ch = None
        self.consumer_tag: str | None = None

    # The signal handler only sets a flag; the main loop notices it within a second.
    def stop(self, signum: int | None = None, _frame: Any = None) -> None:
        if self.stopping.is_set():
            log.warning("second signal: not waiting for running jobs")
            self.impatient.set()
        else:
            log.info("stopping: finishing running jobs")
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._session()
                break
            except (pika.exceptions.AMQPError, ReportFailed, OSError) as e:
                self.failures += 1
                log.warning("worker session ended (%s: %s); reconnecting", type(e).__name__, e)
            finally:
                self._close()
            delay = min(0.2 * 2 ** min(self.failures, 5), 5.0)
            self.stopping.wait(delay)
        log.info("worker stopped")

    def _connect(self, name: str, **extra: Any) -> pika.BlockingConnection:
        params = pika.URLParameters(self.config.amqp_url)
        params.client_properties = {"connection_name": name}
        params.socket_timeout = 10
        params.connection_attempts = 1
        for key, value in extra.items():
            setattr(params, key, value)
        return pika.BlockingConnection(params)

    def _session(self) -> None:
        self.session += 1
        self.running.clear()
        # Separate connections: a publisher blocked by a RabbitMQ alarm must not stall acks.
        self.consume_conn = self._connect("baton-py-worker-consume")
        self.publish_conn = self._connect("baton-py-worker-publish", blocked_connection_timeout=30)
        self.consume_ch = self.consume_conn.channel()
        # Per-consumer prefetch: quorum queues do not support global QoS.
        self.consume_ch.basic_qos(prefetch_count=self.config.prefetch)
        self.consume_ch.queue_declare(
            self.config.job_queue, durable=True, arguments=dict(QUEUE_ARGUMENTS)
        )
        self.publish_ch = self.publish_conn.channel()
        # Declared so that `started` is never unroutable before Baton first ran.
        self.publish_ch.queue_declare(
            self.config.events_queue, durable=True, arguments=dict(QUEUE_ARGUMENTS)
        )
        self.publish_ch.confirm_delivery()
        self.consumer_tag = self.consume_ch.basic_consume(
            self.config.job_queue, on_message_callback=self._on_delivery
        )
        self.failures = 0
        log.info(
            "worker consuming queue=%s prefetch=%d worker=%s",
            self.config.job_queue,
            self.config.prefetch,
            self.config.worker_id,
        )

        while not self.stopping.is_set():
            self.consume_conn.process_data_events(time_limit=1)
            self.publish_conn.process_data_events(time_limit=0)
            self._report_finished()

        # Graceful stop: take no more jobs, let running ones report, then leave. Anything still
        # running at the deadline is requeued by RabbitMQ when the channel closes.
        self.consume_ch.basic_cancel(self.consumer_tag)
        deadline = time.monotonic() + self.config.shutdown_timeout
        while self.running and time.monotonic() < deadline and not self.impatient.is_set():
            self.consume_conn.process_data_events(time_limit=0.2)
            self.publish_conn.process_data_events(time_limit=0)
            self._report_finished()
        if self.running:
            log.warning("%d running job(s) did not finish in time; they will be redelivered", len(self.running))

    def _close(self) -> None:
        for conn in (self.consume_conn, self.publish_conn):
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception as e:  # closing is best effort
                    log.debug("closing a connection failed: %s", e)
        self.consume_conn = self.publish_conn = self.consume_ch = self.publish_ch = None

    def _on_delivery(self, channel, method, properties, body: bytes) -> None:
        tag = method.delivery_tag
        try:
            job = parse_job(body)
        except MalformedMessage as e:
            log.error("rejecting a malformed job message: %s", e)
            channel.basic_reject(tag, requeue=False)
            return
        # Baton always sets reply_to; `{prefix}events` is only a fallback.
        reply_to = properties.reply_to or self.config.events_queue
        log.info("job %s attempt %d received", job.job_id, job.attempt)
        try:
            self._publish(reply_to, job.job_id, job.attempt, {"type": "started"})
        except ReportFailed as e:
            log.warning("could not report the start of job %s (%s); requeueing it", job.job_id, e)
            channel.basic_nack(tag, requeue=True)
            raise

        thread = threading.Thread(
            target=self._run_job,
            args=(self.session, tag, reply_to, job),
            name=f"job-{job.job_id}",
            daemon=True,
        )
        self.running[tag] = thread
        thread.start()

    def _run_job(self, session: int, tag: int, reply_to: str, message: JobMessage) -> None:
        try:
            if message.version != PROTOCOL_VERSION:
                raise JobError.permanent(
                    "unsupported_version",
                    f"job message version {message.version}; this worker speaks {PROTOCOL_VERSION}",
                )
            inputs = resolve_inputs(self.config.storage_dir, message.files)
            result = self.model(Job(message=message, inputs=inputs, stopping=self.stopping))
            check_result(result)
            event = {"type": "succeeded", "result": result}
            log.info("job %s attempt %d succeeded", message.job_id, message.attempt)
        except JobError as e:
            log.info("job %s attempt %d failed: %s (retryable: %s)", message.job_id, message.attempt, e, e.retryable)
            error = {"code": e.code, "message": e.message.replace("\0", "\ufffd")}
            event = {"type": "failed", "error": error, "retryable": e.retryable}
        except Exception as e:  # a bug or an unexpected fault in the model
            log.exception("job %s attempt %d crashed", message.job_id, message.attempt)
            event = {
                "type": "failed",
                "error": {"code": "model_error", "message": f"{type(e).__name__}: {e}"},
                "retryable": True,
            }
        self.finished.put(Outcome(session, tag, reply_to, message.job_id, message.attempt, event))
        conn = self.consume_conn
        if conn is not None:
            try:
                conn.add_callback_threadsafe(lambda: None)  # wake the main loop
            except Exception:
                pass  # the main loop polls anyway

    def _report_finished(self) -> None:
        while True:
            try:
                outcome = self.finished.get_nowait()
            except queue.Empty:
                return
            if outcome.session != self.session:
                # Its delivery died with an old channel; RabbitMQ has redelivered it.
                log.info("dropping the outcome of job %s attempt %d from a closed connection",
                         outcome.job_id, outcome.attempt)
                continue
            self.running.pop(outcome.delivery_tag, None)
            try:
                self._publish(outcome.reply_to, outcome.job_id, outcome.attempt, outcome.event)
            except ReportFailed as e:
                log.warning("could not report the outcome of job %s (%s); requeueing it", outcome.job_id, e)
                self.consume_ch.basic_nack(outcome.delivery_tag, requeue=True)
                raise
            # Ack only once Baton's queue holds the outcome.
            self.consume_ch.basic_ack(outcome.delivery_tag)

    def _publish(self, reply_to: str, job_id: str, attempt: int, kind: dict[str, Any]) -> None:
        event = {
            "version": PROTOCOL_VERSION,
            "job_id": job_id,
            "attempt": attempt,
            "worker": self.config.worker_id,
            **kind,
        }
        body = json.dumps(event, separators=(",", ":"), allow_nan=False).encode()
        try:
            # With confirm_delivery() this blocks until RabbitMQ confirms and raises if the
            # message was returned (mandatory, no such queue) or nacked.
            self.publish_ch.basic_publish(
                exchange="",
                routing_key=reply_to,
                body=body,
                properties=pika.BasicProperties(
                    content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent
                ),
                mandatory=True,
            )
        except pika.exceptions.UnroutableError:
            raise ReportFailed(f"event queue {reply_to!r} does not exist") from None
        except pika.exceptions.NackError:
            raise ReportFailed("RabbitMQ did not accept the event") from None
        except pika.exceptions.AMQPError as e:
            raise ReportFailed(f"{type(e).__name__}: {e}") from e


def main() -> int:
    level = os.environ.get("BATON_LOG", "info").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    try:
        config = Config.from_env()
    except ConfigError as e:
        log.error("%s", e)
        return 2
    worker = Worker(config, example_model)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
