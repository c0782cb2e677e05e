"""The job message (versions 1 and 2): parsing, ignoring unknown fields, and refusing newer
versions."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

# Version 2 added files in object storage (`object`, with `path` then absent). Baton sends 1
# while every file is on the volume; this worker accepts both.
PROTOCOL_VERSION = 2


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
class ObjectRef:
    """Where an object-stored input is (`store`, `key`) and a signed URL to GET it until
    `expires_at` (aware, UTC). The URL is a bearer secret: never log it."""

    store: str
    key: str
    url: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"ObjectRef(store={self.store!r}, key={self.key!r}, url=<secret>, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class FileRef:
    """An input: on the volume (`path`) or in object storage (`object`); exactly one of the two
    is expected, which `inputs.locate` checks."""

    id: str
    name: str
    path: str | None
    size: int
    sha256: str
    content_type: str
    object: ObjectRef | None = None


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


_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime in UTC (fractions beyond microseconds are
    dropped), or None. Not `fromisoformat`, which before Python 3.11 refuses `Z`."""
    match = _RFC3339.fullmatch(text)
    if not match:
        return None
    day, clock, fraction, zulu, sign, hours, minutes = match.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}")
    except ValueError:
        return None
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    offset = timedelta(0) if zulu else timedelta(hours=int(hours), minutes=int(minutes))
    if sign == "-":
        offset = -offset
    return moment.replace(tzinfo=timezone(offset)).astimezone(timezone.utc)


def _object(item: dict, what: str) -> ObjectRef | None:
    if item.get("object") is None:
        return None
    obj = _field(item, "object", dict, what)
    what = f"{what}.object"
    expires_text = _field(obj, "expires_at", str, what)
    expires_at = parse_rfc3339(expires_text)
    if expires_at is None:
        raise MalformedMessage(f"{what}: field 'expires_at' is not an RFC 3339 timestamp")
    return ObjectRef(
        store=_field(obj, "store", str, what),
        key=_field(obj, "key", str, what),
        url=_field(obj, "url", str, what),
        expires_at=expires_at,
    )


def parse_job(body: bytes) -> JobMessage:
    """Parses a job message, ignoring unknown fields (they may be added without a version bump).

    Raises UnsupportedVersion for a message of a newer version whose `job_id` and `attempt` can
    still be read (so that the failure can be reported), MalformedMessage for anything else that
    is not a job message of version 1 or 2. A file without `path` or `object`, or with both,
    parses: it fails the attempt later, as an invalid reference."""
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
                path=None if item.get("path") is None else _field(item, "path", str, what),
                size=_unsigned(item, "size", what),
                sha256=_field(item, "sha256", str, what),
                content_type=_field(item, "content_type", str, what),
                object=_object(item, what),
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
