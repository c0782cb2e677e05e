#!/usr/bin/env python3
"""A Baton worker in Python, speaking the protocol described in protocol/README.md.

It consumes `{prefix}jobs.{model}` (declared with exactly the arguments Baton uses), checks every
input file on its (read-only) mount of the shared volume and runs the model in a thread. While
the model runs it sends a `heartbeat` every `heartbeat_interval_ms` (from the job message: Baton
derives it from its lease) to renew the attempt's lease, and it listens on the `{prefix}control`
fanout exchange for Baton asking it to stop an attempt. It runs an attempt once: a second
delivery of an attempt it is running is acked and dropped without events.
It reports `started` and the outcome to the queue named in the job's `reply_to` property with
publisher confirms, and acks the job once the outcome is confirmed, or earlier, at the ack
deadline, for jobs that run longer than that.

The "model" here does real work without weights: it streams every input, checks its SHA-256
against the one Baton recorded and, for text, counts lines, words and characters. The optional
parameter `sleep_ms` adds a delay standing in for inference time.

Configuration (the same variables as the Rust worker runtime):

    BATON_AMQP_URL                 amqp://guest:guest@127.0.0.1:5672/%2f
    BATON_STORAGE_DIR              ./data   the worker's mount of the volume
    BATON_WORKER_MODEL             example-py
    BATON_QUEUE_PREFIX             baton.
    BATON_WORKER_PREFETCH          1        jobs held and run at once
    BATON_WORKER_ID                hostname/pid-xxxx (unique per process start)
    BATON_WORKER_HEARTBEAT         10s      heartbeat interval for job messages without
                                            `heartbeat_interval_ms` (from an older Baton)
    BATON_WORKER_ACK_DEADLINE      20m      a job still running this long is acked early
    BATON_WORKER_SHUTDOWN_TIMEOUT  30s      how long SIGTERM waits for running jobs
    BATON_LOG                      info     debug, info, warning or error

Durations are an integer with a unit: 500ms, 30s, 20m or 2h.
"""

from __future__ import annotations

import codecs
import collections
import hashlib
import json
import logging
import os
import queue
import re
import secrets
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
# How many cancelled attempts are remembered, so that a delivery of one arriving after Baton
# asked to stop it is not run at all.
CANCEL_MEMORY = 10_000

log = logging.getLogger("baton-worker")


# --- queues -------------------------------------------------------------------------------------


def job_queue_arguments(prefix: str) -> dict[str, Any]:
    """The arguments of every job queue, exactly as Baton declares them
    (`baton_protocol::queue::job_queue_arguments`). RabbitMQ refuses (PRECONDITION_FAILED) a
    declaration whose arguments differ. With `x-delivery-limit` 0 every message returned to the
    queue (a crash, a nack, a reject, a closed channel) is dead-lettered to Baton, which decides
    whether to run the job again; RabbitMQ never redelivers a job by itself."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": 0,
        "x-dead-letter-exchange": f"{prefix}dead-letter",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


# The events queue is a plain durable quorum queue.
EVENTS_QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}


# --- configuration ------------------------------------------------------------------------------


class ConfigError(Exception):
    pass


_DURATION = re.compile(r"(\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Seconds in `500ms`, `30s`, `20m` or `2h`; None for anything else, or zero (as the Rust
    worker's parser)."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        return None
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return seconds if seconds > 0 else None


def default_worker_id() -> str:
    """`hostname/pid-xxxx`: unique per process start (the random suffix tells apart restarts that
    reuse a pid, as containers do). Baton fences events by this identity."""
    host = socket.gethostname() or "worker"
    return f"{host}/{os.getpid()}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Config:
    amqp_url: str
    storage_dir: str
    model: str
    queue_prefix: str
    prefetch: int
    worker_id: str
    # Only for job messages without `heartbeat_interval_ms`: Baton knows its lease, the worker
    # does not, so the message's interval wins.
    fallback_heartbeat_interval: float
    ack_deadline: float
    shutdown_timeout: float

    @property
    def job_queue(self) -> str:
        return f"{self.queue_prefix}jobs.{self.model}"

    @property
    def events_queue(self) -> str:
        return f"{self.queue_prefix}events"

    @property
    def control_exchange(self) -> str:
        return f"{self.queue_prefix}control"

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

        def duration(name: str, default: str) -> float:
            text = env.get(name, default)
            seconds = parse_duration(text)
            if seconds is None:
                raise ConfigError(f"invalid {name} {text!r}: expected a duration such as 500ms, 30s or 20m")
            return seconds

        amqp_url = env.get("BATON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        if not amqp_url.startswith(("amqp://", "amqps://")):
            raise ConfigError("invalid BATON_AMQP_URL: expected an amqp:// or amqps:// URL")
        return cls(
            amqp_url=amqp_url,
            storage_dir=env.get("BATON_STORAGE_DIR", "./data"),
            model=model,
            queue_prefix=env.get("BATON_QUEUE_PREFIX", "baton."),
            prefetch=prefetch,
            worker_id=env.get("BATON_WORKER_ID") or default_worker_id(),
            fallback_heartbeat_interval=duration("BATON_WORKER_HEARTBEAT", "10s"),
            ack_deadline=duration("BATON_WORKER_ACK_DEADLINE", "20m"),
            shutdown_timeout=duration("BATON_WORKER_SHUTDOWN_TIMEOUT", "30s"),
        )


# --- the job message ----------------------------------------------------------------------------


class MalformedMessage(Exception):
    """The delivery is not a job message at all: it is rejected without requeue."""


class UnsupportedVersion(Exception):
    """A job message of a newer protocol version than this worker's: its fields cannot be
    trusted, so the job fails (not retryable) rather than being guessed at."""

    def __init__(self, job_id: str, attempt: int, version: int):
        super().__init__(f"job message version {version} is newer than this worker's {PROTOCOL_VERSION}")
        self.job_id = job_id
        self.attempt = attempt
        self.version = version


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
    # Baton's lease and the heartbeat interval it asks for, in milliseconds. Optional: a Baton
    # older than these fields does not send them.
    lease_ms: int | None = None
    heartbeat_interval_ms: int | None = None

    def heartbeat_interval(self, fallback: float) -> float:
        """Seconds between heartbeats: the message's interval, else `fallback` (a zero, which
        the schema forbids, counts as absent: it would mean a busy loop)."""
        if self.heartbeat_interval_ms:
            return self.heartbeat_interval_ms / 1000
        return fallback


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


def _optional_unsigned(obj: dict, key: str, what: str) -> int | None:
    if obj.get(key) is None:
        return None
    return _unsigned(obj, key, what)


def parse_job(body: bytes) -> JobMessage:
    """Parses a job message, ignoring unknown fields (they may be added without a version bump).

    Raises UnsupportedVersion for a message of a newer version whose `job_id` and `attempt` can
    still be read (so that the failure can be reported), MalformedMessage for anything else that
    is not a version 1 job message."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise MalformedMessage(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage("not a JSON object")
    # The version first: a newer message may have changed any other field.
    version = _unsigned(obj, "version", "job")
    if version > PROTOCOL_VERSION:
        raise UnsupportedVersion(_uuid(obj, "job_id", "job"), _unsigned(obj, "attempt", "job"), version)
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
        version=version,
        job_id=_uuid(obj, "job_id", "job"),
        model=_field(obj, "model", str, "job"),
        params=_field(obj, "params", dict, "job"),
        attempt=_unsigned(obj, "attempt", "job"),
        files=files,
        lease_ms=_optional_unsigned(obj, "lease_ms", "job"),
        heartbeat_interval_ms=_optional_unsigned(obj, "heartbeat_interval_ms", "job"),
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


class Stopped(Exception):
    """Raised by a model that noticed `job.cancel`: Baton asked to stop the attempt (the job was
    cancelled or timed out, or the attempt lost its lease). Nothing is reported for it."""


@dataclass
class Input:
    file: FileRef
    path: str


@dataclass
class Job:
    message: JobMessage
    inputs: list[Input]
    # Set when Baton asks to stop this attempt. Python cannot kill a thread: a model that runs
    # for long should check it (or wait on it) and raise Stopped. Whatever the model returns
    # after it is set is discarded.
    cancel: threading.Event = field(default_factory=threading.Event)


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


def analyse(item: Input, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Streams one input once: SHA-256 always, text counts when the content type is text. Stops
    between chunks when `cancel` is set."""
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
                if cancel is not None and cancel.is_set():
                    raise Stopped()
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
    inputs = [analyse(item, job.cancel) for item in job.inputs]
    # Inference stand-in that notices a stop request at once.
    if sleep_ms and job.cancel.wait(sleep_ms / 1000):
        raise Stopped()
    return {"model": job.message.model, "inputs": inputs}


def check_result(result: Any) -> None:
    """Refuses a result Baton could not store. Baton would fail the job with `invalid_result`
    anyway; failing it here says why."""
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


@dataclass(eq=False)
class Attempt:
    """One attempt this worker runs, from its delivery until its outcome is reported or Baton
    asks to stop it."""

    job_id: str
    attempt: int
    reply_to: str
    session: int  # the session whose channel holds the delivery
    delivery_tag: int
    received: float  # time.monotonic() at delivery
    heartbeat_interval: float  # seconds, from the job message
    next_heartbeat: float
    cancel: threading.Event = field(default_factory=threading.Event)
    acked: bool = False
    # The outcome event once the model returned, until it is confirmed.
    outcome: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.job_id, self.attempt)


class ReportFailed(Exception):
    pass


class SessionLost(Exception):
    pass


class Worker:
    """Consume → started → run (in a thread, with heartbeats) → outcome with confirm → ack,
    reconnecting after failures.

    All AMQP calls happen on the main thread (pika connections are not thread-safe): it services
    both connections, sends heartbeats and acks on timers, applies control messages, and reports
    the outcomes model threads hand back through a queue."""

    def __init__(self, config: Config, model: Callable[[Job], Any]):
        self.config = config
        self.model = model
        self.stopping = threading.Event()
        self.impatient = threading.Event()  # a second signal: do not wait for running jobs
        self.finished: queue.Queue[tuple[Attempt, dict[str, Any] | None]] = queue.Queue()
        self.running: dict[tuple[str, int], Attempt] = {}
        # Attempts Baton asked to stop, most recent last.
        self.cancelled: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()
        self.session = 0
        self.failures = 0  # consecutive failed sessions, for the reconnection backoff
        self.consume_conn: pika.BlockingConnection | None = None
        self.publish_conn: pika.BlockingConnection | None = None
        self.consume_ch = None
        self.control_ch = None
        self.publish_ch = None

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
            except (pika.exceptions.AMQPError, ReportFailed, SessionLost, OSError) as e:
                self.failures += 1
                log.warning("worker session ended (%s: %s); reconnecting", type(e).__name__, e)
            finally:
                self._close()
                self._drop_unacked()
            delay = min(0.2 * 2 ** min(self.failures, 5), 5.0)
            self.stopping.wait(delay)
        log.info("worker stopped")

    # -- connections

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
        config = self.config
        # Separate connections: a publisher blocked by a RabbitMQ alarm must not stall acks.
        self.consume_conn = self._connect("baton-py-worker-consume")
        self.publish_conn = self._connect("baton-py-worker-publish", blocked_connection_timeout=30)
        self.consume_ch = self.consume_conn.channel()
        # Per-consumer prefetch: quorum queues do not support global QoS.
        self.consume_ch.basic_qos(prefetch_count=config.prefetch)
        self.consume_ch.queue_declare(
            config.job_queue, durable=True, arguments=job_queue_arguments(config.queue_prefix)
        )
        self.publish_ch = self.publish_conn.channel()
        # Declared so that `started` is never unroutable before Baton first ran.
        self.publish_ch.queue_declare(
            config.events_queue, durable=True, arguments=dict(EVENTS_QUEUE_ARGUMENTS)
        )
        self.publish_ch.confirm_delivery()
        # Subscribed before consuming jobs, so that no stop request for a job taken is missed.
        self._subscribe_control()
        consumer_tag = self.consume_ch.basic_consume(config.job_queue, on_message_callback=self._on_delivery)
        self.failures = 0
        log.info(
            "worker consuming queue=%s prefetch=%d worker=%s fallback_heartbeat=%gs ack_deadline=%gs",
            config.job_queue,
            config.prefetch,
            config.worker_id,
            config.fallback_heartbeat_interval,
            config.ack_deadline,
        )

        while not self.stopping.is_set():
            self._pump()

        # Graceful stop: take no more jobs, let running ones report (heartbeats and control
        # messages still flow meanwhile), then leave. Anything not acked by then goes back to
        # Baton through the dead-letter exchange when the channel closes, and is retried.
        self.consume_ch.basic_cancel(consumer_tag)
        deadline = time.monotonic() + config.shutdown_timeout
        while self.running and time.monotonic() < deadline and not self.impatient.is_set():
            self._pump(cap=0.2)
        if self.running:
            log.warning(
                "%d running job(s) did not finish in time; Baton will retry them", len(self.running)
            )
        for attempt in list(self.running.values()):
            attempt.cancel.set()
            if attempt.acked:
                # Acked at the ack deadline: nothing goes back to Baton when the channel closes,
                # so say the attempt is over rather than leave Baton waiting for its lease to run
                # out. Unacked ones are dead-lettered to Baton (`worker_lost`) on close.
                event = {
                    "type": "failed",
                    "error": {"code": "worker_stopped", "message": "the worker stopped before the job finished"},
                    "retryable": True,
                }
                try:
                    self._publish(attempt.reply_to, attempt.job_id, attempt.attempt, event)
                    del self.running[attempt.key]
                except ReportFailed as e:
                    log.warning("job %s attempt %d: could not report the stop (%s)", *attempt.key, e)

    def _subscribe_control(self) -> None:
        """A private queue bound to the control fanout exchange; it lives as long as this
        connection. Control messages are hints, consumed without acks."""
        self.control_ch = self.consume_conn.channel()
        exchange = self.config.control_exchange
        self.control_ch.exchange_declare(exchange, exchange_type="fanout", durable=True)
        private = self.control_ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.control_ch.queue_bind(private, exchange)
        self.control_ch.basic_consume(private, on_message_callback=self._on_control, auto_ack=True)

    def _close(self) -> None:
        for conn in (self.consume_conn, self.publish_conn):
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception as e:  # closing is best effort
                    log.debug("closing a connection failed: %s", e)
        self.consume_conn = self.publish_conn = None
        self.consume_ch = self.control_ch = self.publish_ch = None

    def _drop_unacked(self) -> None:
        """After a session ends: unacked job messages went back to RabbitMQ with the channel, and
        from there to Baton, which retries them; running them on is wasted work. Attempts already
        acked (past the ack deadline) are still ours: they keep running, heartbeats resume on the
        next connection and their outcome is reported there."""
        for key, attempt in list(self.running.items()):
            if not attempt.acked:
                del self.running[key]
                attempt.cancel.set()
                log.warning(
                    "job %s attempt %d went back to Baton with the connection; stopping it", *key
                )

    # -- the main loop

    def _pump(self, cap: float = 1.0) -> None:
        """One turn of the main loop: wait for AMQP traffic (at most until the next timer), then
        report finished jobs and fire due heartbeats and ack deadlines."""
        self.consume_conn.process_data_events(time_limit=self._until_next_timer(cap))
        self.publish_conn.process_data_events(time_limit=0)
        for name, channel in (("job", self.consume_ch), ("control", self.control_ch), ("event", self.publish_ch)):
            if not channel.is_open:
                raise SessionLost(f"the {name} channel closed")
        self._collect_finished()
        self._report_outcomes()
        self._timers()

    def _until_next_timer(self, cap: float) -> float:
        if not self.finished.empty():
            return 0
        now = time.monotonic()
        due = now + cap
        for attempt in self.running.values():
            if attempt.outcome is not None:
                return 0
            due = min(due, attempt.next_heartbeat)
            if not attempt.acked:
                due = min(due, attempt.received + self.config.ack_deadline)
        return max(0.0, due - now)

    def _timers(self) -> None:
        now = time.monotonic()
        for attempt in list(self.running.values()):
            if not attempt.acked and now >= attempt.received + self.config.ack_deadline:
                # Holding the message longer would run into RabbitMQ's consumer timeout, which
                # closes the channel. From now on the lease, renewed by heartbeats, is what tells
                # Baton the attempt is alive.
                log.info(
                    "job %s attempt %d still running at the ack deadline: acked early, the lease guards it now",
                    *attempt.key,
                )
                self._ack(attempt)
            if now >= attempt.next_heartbeat:
                attempt.next_heartbeat = now + attempt.heartbeat_interval
                try:
                    self._publish(attempt.reply_to, attempt.job_id, attempt.attempt, {"type": "heartbeat"})
                    log.debug("job %s attempt %d heartbeat", *attempt.key)
                except ReportFailed as e:
                    # The lease outlasts several heartbeats: try again at the next one.
                    log.warning("job %s attempt %d: heartbeat not confirmed (%s)", *attempt.key, e)
                    if not self.publish_ch.is_open:
                        raise

    def _ack(self, attempt: Attempt) -> None:
        if attempt.acked:
            return
        if attempt.session != self.session:
            # Cannot happen: unacked attempts do not outlive their session.
            return
        self.consume_ch.basic_ack(attempt.delivery_tag)
        attempt.acked = True

    # -- deliveries

    def _on_delivery(self, channel, method, properties, body: bytes) -> None:
        tag = method.delivery_tag
        # Baton always sets reply_to; `{prefix}events` is only a fallback.
        reply_to = properties.reply_to or self.config.events_queue
        try:
            job = parse_job(body)
        except UnsupportedVersion as e:
            log.error("job %s attempt %d: %s; failing it", e.job_id, e.attempt, e)
            event = {
                "type": "failed",
                "error": {"code": "unsupported_version", "message": str(e)},
                "retryable": False,
            }
            try:
                self._publish(reply_to, e.job_id, e.attempt, event)
            except ReportFailed as failure:
                log.warning("could not report job %s (%s); handing it back", e.job_id, failure)
                channel.basic_nack(tag, requeue=True)
                raise
            channel.basic_ack(tag)
            return
        except MalformedMessage as e:
            # Dead-lettered to Baton, which logs and drops it.
            log.error("rejecting a malformed job message: %s", e)
            channel.basic_reject(tag, requeue=False)
            return

        key = (job.job_id, job.attempt)
        if key in self.cancelled:
            log.info("job %s attempt %d was already stopped by Baton; skipping it", *key)
            channel.basic_ack(tag)
            return
        if key in self.running:
            # Another delivery of an attempt this worker is running (Baton may publish an attempt
            # again): the first one runs on and reports. Acked, not given back: a copy of a running
            # attempt returned to Baton would end that attempt as `worker_lost`.
            log.info("job %s attempt %d is already running here; dropping the duplicate", *key)
            channel.basic_ack(tag)
            return

        interval = job.heartbeat_interval(self.config.fallback_heartbeat_interval)
        log.info("job %s attempt %d received; heartbeat every %d ms", *key, round(interval * 1000))
        try:
            self._publish(reply_to, job.job_id, job.attempt, {"type": "started"})
        except ReportFailed as e:
            # Unstarted: Baton publishes the same attempt again, with backoff.
            log.warning("could not report the start of job %s (%s); handing it back", job.job_id, e)
            channel.basic_nack(tag, requeue=True)
            raise

        now = time.monotonic()
        attempt = Attempt(
            job_id=job.job_id,
            attempt=job.attempt,
            reply_to=reply_to,
            session=self.session,
            delivery_tag=tag,
            received=now,
            heartbeat_interval=interval,
            next_heartbeat=now + interval,
        )
        self.running[key] = attempt
        threading.Thread(
            target=self._run_job, args=(attempt, job), name=f"job-{job.job_id}", daemon=True
        ).start()

    def _on_control(self, channel, method, properties, body: bytes) -> None:
        try:
            message = json.loads(body)
            if message.get("type") != "cancel":
                raise ValueError(f"unknown type {message.get('type')!r}")
            key = (str(uuid.UUID(message["job_id"])), message["attempt"])
            if isinstance(key[1], bool) or not isinstance(key[1], int):
                raise ValueError("attempt is not an integer")
            reason = str(message.get("reason", ""))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            # Forward compatibility: later versions may add control messages.
            log.debug("ignoring a control message: %s", e)
            return
        self._remember_cancelled(key)
        attempt = self.running.pop(key, None)
        if attempt is None:
            return
        attempt.cancel.set()
        # Nothing to report: Baton has already ended the attempt. The ack settles the message.
        self._ack(attempt)
        log.info("job %s attempt %d: Baton asked to stop it (%s); stopped, no outcome reported", *key, reason)

    def _remember_cancelled(self, key: tuple[str, int]) -> None:
        self.cancelled[key] = None
        self.cancelled.move_to_end(key)
        while len(self.cancelled) > CANCEL_MEMORY:
            self.cancelled.popitem(last=False)

    # -- model threads

    def _run_job(self, attempt: Attempt, message: JobMessage) -> None:
        event: dict[str, Any] | None
        try:
            inputs = resolve_inputs(self.config.storage_dir, message.files)
            result = self.model(Job(message=message, inputs=inputs, cancel=attempt.cancel))
            check_result(result)
            event = {"type": "succeeded", "result": result}
            log.info("job %s attempt %d succeeded", *attempt.key)
        except Stopped:
            event = None
        except JobError as e:
            log.info("job %s attempt %d failed: %s (retryable: %s)", *attempt.key, e, e.retryable)
            error = {"code": e.code, "message": e.message.replace("\0", "\ufffd")}
            event = {"type": "failed", "error": error, "retryable": e.retryable}
        except Exception as e:  # a bug or an unexpected fault in the model
            log.exception("job %s attempt %d crashed", *attempt.key)
            event = {
                "type": "failed",
                "error": {"code": "model_error", "message": f"{type(e).__name__}: {e}"},
                "retryable": True,
            }
        if attempt.cancel.is_set():
            event = None  # Baton has ended this attempt: whatever happened no longer matters
        elif event is None:
            event = {
                "type": "failed",
                "error": {"code": "model_error", "message": "the model stopped without being asked to"},
                "retryable": True,
            }
        self.finished.put((attempt, event))
        conn = self.consume_conn
        if conn is not None:
            try:
                conn.add_callback_threadsafe(lambda: None)  # wake the main loop
            except Exception:
                pass  # the main loop polls anyway

    def _collect_finished(self) -> None:
        while True:
            try:
                attempt, event = self.finished.get_nowait()
            except queue.Empty:
                return
            if self.running.get(attempt.key) is not attempt:
                # Stopped on Baton's request, or its message went back with a closed connection.
                log.info("job %s attempt %d: the model stopped; its outcome is discarded", *attempt.key)
                continue
            attempt.outcome = event

    def _report_outcomes(self) -> None:
        for attempt in list(self.running.values()):
            if attempt.outcome is None:
                continue
            try:
                self._publish(attempt.reply_to, attempt.job_id, attempt.attempt, attempt.outcome)
            except ReportFailed as e:
                if not attempt.acked:
                    # Handed back: Baton sees the running attempt's message dead-lettered and
                    # retries the job.
                    log.warning("could not report the outcome of job %s (%s); handing it back", attempt.job_id, e)
                    del self.running[attempt.key]
                    try:
                        self.consume_ch.basic_nack(attempt.delivery_tag, requeue=True)
                    except pika.exceptions.AMQPError as nack_error:
                        log.warning("nack failed (%s); the closing channel hands it back", nack_error)
                else:
                    log.warning(
                        "could not report the outcome of job %s (%s); trying again after reconnecting",
                        attempt.job_id,
                        e,
                    )
                raise
            del self.running[attempt.key]
            # Ack only once Baton's queue holds the outcome.
            self._ack(attempt)

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
