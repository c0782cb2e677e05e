"""File references resolved to local files, and checked: a path on the worker's mount of the
shared volume, or an object fetched into the cache."""

from __future__ import annotations

import contextlib
import os
import stat
from datetime import datetime, timedelta, timezone
from typing import Iterator

from .cache import CacheFull, CachedFile, ObjectCache
from .fetch import FetchError
from .job import Input, JobError
from .messages import FileRef, ObjectRef

# A signed URL that expires sooner than this before `started` is given back for a fresh one.
EXPIRY_MARGIN = timedelta(seconds=5)


def is_safe_path(path: str) -> bool:
    """A plain relative path: no root, no `..`, no empty or `.` segments, no backslash or NUL."""
    if not path or "\\" in path or "\0" in path:
        return False
    return all(segment not in ("", ".", "..") for segment in path.split("/"))


def locate(file: FileRef) -> str | ObjectRef:
    """The file's safe volume path or its object: exactly one of `path` and `object` must be
    present. Anything else is an invalid reference (a permanent failure)."""
    if file.path is not None and file.object is not None:
        raise JobError.permanent("invalid_reference", f"input {file.name!r} has both a `path` and an `object`")
    if file.object is not None:
        return file.object
    if file.path is None:
        raise JobError.permanent("invalid_reference", f"input {file.name!r} has neither a `path` nor an `object`")
    if not is_safe_path(file.path):
        raise JobError.permanent("invalid_reference", f"input {file.name!r} has an unsafe path")
    return file.path


def expiring(files: list[FileRef], now: datetime | None = None) -> FileRef | None:
    """The first file whose signed URL expires within EXPIRY_MARGIN of `now`."""
    now = now or datetime.now(timezone.utc)
    for file in files:
        if file.object is not None and file.object.expires_at <= now + EXPIRY_MARGIN:
            return file
    return None


@contextlib.contextmanager
def resolved_inputs(mount: str, files: list[FileRef], cache: ObjectCache | None) -> Iterator[list[Input]]:
    """The job's inputs as local files, cached ones held (not evicted) until the block ends."""
    held: list[CachedFile] = []
    try:
        yield resolve_inputs(mount, files, cache, held)
    finally:
        for cached in held:
            cached.release()


def resolve_inputs(
    mount: str, files: list[FileRef], cache: ObjectCache | None = None, held: list[CachedFile] | None = None
) -> list[Input]:
    """Maps file references to local files: paths under the mount, refusing anything that could
    escape it or that differs from what Baton recorded, or objects fetched into `cache` (each
    appended to `held`, for the caller to release)."""
    # Every reference first, so that a bad one fails the job before anything is fetched.
    locations = [locate(file) for file in files]
    root = os.path.realpath(mount)
    inputs = []
    for file, location in zip(files, locations):
        if isinstance(location, ObjectRef):
            inputs.append(Input(file=file, path=_fetch(cache, file, location, held)))
            continue
        path = os.path.join(root, *location.split("/"))
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


def _fetch(cache: ObjectCache | None, file: FileRef, obj: ObjectRef, held: list[CachedFile] | None) -> str:
    if cache is None:
        raise JobError.transient("input_unavailable", f"input {file.name!r} is in object storage and this worker has no cache")
    try:
        cached = cache.get(obj, file.sha256, file.size)
    except ValueError as e:
        raise JobError.permanent("invalid_reference", f"input {file.name!r}: {e}") from None
    except CacheFull as e:
        raise JobError.transient("input_unavailable", f"input {file.name!r}: {e}") from None
    except FetchError as e:
        code, retryable = _FETCH_FAILURES[e.kind]
        raise JobError(code, f"input {file.name!r}: {e.message}", retryable) from None
    if held is not None:
        held.append(cached)
    return cached.path


# FetchError kinds as failures: fetched bytes that do not match may have been damaged on the
# way, so another attempt is worth it.
_FETCH_FAILURES = {
    "unavailable": ("input_unavailable", True),
    "corrupt": ("checksum_mismatch", True),
    "mismatch": ("input_mismatch", False),
    "local": ("input_unreadable", True),
    "invalid": ("invalid_reference", False),
}
