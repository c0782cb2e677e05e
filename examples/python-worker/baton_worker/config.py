"""Settings from the environment: the same variables as the Rust worker runtime.

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
    BATON_CACHE_DIR                $TMPDIR/baton-cache   where object-stored inputs are cached
    BATON_CACHE_MAX_BYTES          10GiB    the cache's bound (bytes, or KiB/MiB/GiB/TiB)
    BATON_OBJECT_ACCESS            signed-url   or `credentials`: read objects by store and
                                            key with the worker's own credentials (obstore)
    BATON_LOG                      info     debug, info, warning or error (read by `cli`)

Durations are an integer with a unit: 500ms, 30s, 20m or 2h.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import tempfile
from dataclasses import dataclass

MODEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


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


_SIZE = re.compile(r"(\d+)\s*(KiB|MiB|GiB|TiB)?")
_UNIT_SHIFT = {None: 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}
# Like the Rust runtime's u64.
_MAX_SIZE = 2**64 - 1

DEFAULT_CACHE_MAX_BYTES = 10 << 30
OBJECT_ACCESS_MODES = ("signed-url", "credentials")


def parse_bytes(text: str) -> int | None:
    """A positive byte count, `10737418240` or `10GiB` (KiB, MiB, GiB, TiB); None otherwise (as
    the Rust worker's parser)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        return None
    size = int(match.group(1)) << _UNIT_SHIFT[match.group(2)]
    return size if 0 < size <= _MAX_SIZE else None


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
    # The cache of object-stored inputs, and how they are read.
    cache_dir: str = os.path.join(tempfile.gettempdir(), "baton-cache")
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    object_access: str = "signed-url"

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
        cache_max_text = env.get("BATON_CACHE_MAX_BYTES")
        cache_max_bytes = DEFAULT_CACHE_MAX_BYTES
        if cache_max_text is not None:
            parsed = parse_bytes(cache_max_text)
            if parsed is None:
                raise ConfigError(
                    f"invalid BATON_CACHE_MAX_BYTES {cache_max_text!r}: expected a positive size such as "
                    "10737418240 or 10GiB"
                )
            cache_max_bytes = parsed
        object_access = env.get("BATON_OBJECT_ACCESS", "signed-url")
        if object_access not in OBJECT_ACCESS_MODES:
            raise ConfigError(f"invalid BATON_OBJECT_ACCESS {object_access!r}: expected signed-url or credentials")
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
            cache_dir=env.get("BATON_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "baton-cache"),
            cache_max_bytes=cache_max_bytes,
            object_access=object_access,
        )
