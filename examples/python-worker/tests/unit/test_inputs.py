"""Input files: path safety, resolution under the mount and the checks against what Baton
recorded."""

from __future__ import annotations

import os

import pytest

from baton_worker.inputs import is_safe_path, resolve_inputs
from baton_worker.job import JobError
from baton_worker.messages import FileRef
from samples import FILE_ID, file_ref


@pytest.mark.parametrize("path", ["blobs/default/ab/cd/abcd", "a", "a.b/c..d"])
def test_plain_relative_paths_are_safe(path):
    assert is_safe_path(path)


@pytest.mark.parametrize("path", ["", "/etc/passwd", "a/../b", "..", "a//b", "./a", "a/.", "a/", "a\\b", "a\0b"])
def test_paths_that_could_escape_are_unsafe(path):
    assert not is_safe_path(path)


def test_inputs_resolve_under_the_mount_and_are_checked(tmp_path):
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "f").write_bytes(b"abc")
    [resolved] = resolve_inputs(str(tmp_path), [file_ref("blobs/f", b"abc")])
    assert resolved.path == str(tmp_path.resolve() / "blobs" / "f")

    with pytest.raises(JobError) as unsafe:
        resolve_inputs(str(tmp_path), [file_ref("../f", b"abc")])
    assert (unsafe.value.code, unsafe.value.retryable) == ("invalid_reference", False)

    with pytest.raises(JobError) as wrong_size:
        resolve_inputs(str(tmp_path), [file_ref("blobs/f", b"abcd")])
    assert (wrong_size.value.code, wrong_size.value.retryable) == ("input_mismatch", False)

    with pytest.raises(JobError) as missing:
        resolve_inputs(str(tmp_path), [file_ref("blobs/nope", b"abc")])
    assert (missing.value.code, missing.value.retryable) == ("input_unavailable", True)

    with pytest.raises(JobError) as directory:
        resolve_inputs(str(tmp_path), [FileRef(FILE_ID, "doc", "blobs", 0, "", "text/plain")])
    assert directory.value.code == "input_mismatch"


def test_symlinks_out_of_the_mount_are_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret")
    mount = tmp_path / "mount"
    mount.mkdir()
    os.symlink(outside, mount / "link")
    with pytest.raises(JobError) as escaped:
        resolve_inputs(str(mount), [file_ref("link", b"secret")])
    assert escaped.value.code == "invalid_reference"
