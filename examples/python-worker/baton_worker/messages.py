"""The job message (version 1): parsing, ignoring unknown fields, and refusing newer versions."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1


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
