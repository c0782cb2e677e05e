"""The model thread of one attempt: resolve the inputs, run the model, and hand the outcome event
back to the main loop (which owns the AMQP connections)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from . import events
from .attempts import Attempt
from .cache import ObjectCache
from .inputs import resolved_inputs
from .job import Job, JobError, Stopped, check_result
from .messages import JobMessage

log = logging.getLogger("baton-worker")

Model = Callable[[Job], Any]
# Called from the model thread with the attempt and its outcome event (None: nothing to report).
OnFinished = Callable[[Attempt, "dict[str, Any] | None"], None]


def start(
    attempt: Attempt, message: JobMessage, model: Model, mount: str, cache: ObjectCache, on_finished: OnFinished
) -> None:
    """Runs the attempt in a daemon thread (Python cannot kill a thread: a model that ignores
    `job.cancel` keeps it busy until it returns). Object-stored inputs are fetched in that
    thread too, while the main loop heartbeats."""

    def run() -> None:
        on_finished(attempt, outcome(attempt, message, model, mount, cache))

    threading.Thread(target=run, name=f"job-{message.job_id}", daemon=True).start()


def outcome(
    attempt: Attempt, message: JobMessage, model: Model, mount: str, cache: ObjectCache | None = None
) -> dict[str, Any] | None:
    """The event that reports the attempt, or None when Baton asked to stop it."""
    event: dict[str, Any] | None
    try:
        # Cached inputs are held (not evicted) until the model returns.
        with resolved_inputs(mount, message.files, cache) as inputs:
            result = model(Job(message=message, inputs=inputs, cancel=attempt.cancel))
        check_result(result)
        event = events.succeeded(result)
        log.info("job %s attempt %d succeeded", *attempt.key)
    except Stopped:
        event = None
    except JobError as e:
        log.info("job %s attempt %d failed: %s (retryable: %s)", *attempt.key, e, e.retryable)
        event = events.failed(e.code, e.message.replace("\0", "\ufffd"), e.retryable)
    except Exception as e:  # a bug or an unexpected fault in the model
        log.exception("job %s attempt %d crashed", *attempt.key)
        event = events.failed("model_error", f"{type(e).__name__}: {e}", retryable=True)
    if attempt.cancel.is_set():
        return None  # Baton has ended this attempt: whatever happened no longer matters
    if event is None:
        return events.failed("model_error", "the model stopped without being asked to", retryable=True)
    return event
