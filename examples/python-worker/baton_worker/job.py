"""What a model receives and how it ends: the job with its checked inputs, a failure to report,
or a stop Baton asked for; and the check of what it returns."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from .messages import FileRef, JobMessage


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
