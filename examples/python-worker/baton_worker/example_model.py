"""The example model: real work without weights. It streams every input once, checks its SHA-256
against the one Baton recorded and, for text, counts lines, words and characters. The optional
parameter `sleep_ms` adds a delay standing in for inference time."""

from __future__ import annotations

import codecs
import hashlib
import os
import threading
from typing import Any

from .job import Input, Job, JobError, Stopped

READ_BUFFER = 1 << 20


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
