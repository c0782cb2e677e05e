"""File references resolved to paths on the worker's mount of the shared volume, and checked."""

from __future__ import annotations

import os
import stat

from .job import Input, JobError
from .messages import FileRef


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
