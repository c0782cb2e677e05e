"""Input files: path safety, resolution under the mount and the checks against what Baton
recorded."""

from __future__ import annotations

import os

import pytest

from datetime import datetime, timedelta, timezone

from baton_worker.cache import ObjectCache
from baton_worker.fetch import RetryPolicy, signed_url_source
from baton_worker.inputs import expiring, is_safe_path, resolve_inputs, resolved_inputs
from baton_worker.job import JobError
from baton_worker.messages import FileRef
from object_server import ObjectServer, object_at, sha256
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


def object_ref(obj, data: bytes, name: str = "doc") -> FileRef:
    return FileRef(FILE_ID, name, None, len(data), sha256(data), "text/plain", obj)


def test_a_file_needs_exactly_one_of_path_and_object(tmp_path):
    obj = object_at("http://127.0.0.1:1/x")
    both = FileRef(FILE_ID, "doc", "blobs/f", 3, "00" * 32, "text/plain", obj)
    neither = FileRef(FILE_ID, "doc", None, 3, "00" * 32, "text/plain")
    for bad, why in [(both, "both"), (neither, "neither")]:
        with pytest.raises(JobError) as refused:
            resolve_inputs(str(tmp_path), [bad], cache=None)
        assert (refused.value.code, refused.value.retryable) == ("invalid_reference", False)
        assert why in refused.value.message


def test_object_inputs_are_fetched_into_the_cache_and_held_while_in_use(tmp_path):
    server = ObjectServer()
    try:
        (tmp_path / "volume" / "blobs").mkdir(parents=True)
        (tmp_path / "volume" / "blobs" / "f").write_bytes(b"abc")
        cache = ObjectCache(str(tmp_path / "cache"), 10, signed_url_source, RetryPolicy(tries=2, first_delay=0.01))
        data = b"fetched!!!"
        files = [file_ref("blobs/f", b"abc"), object_ref(server.put("o", data), data, "remote")]
        with resolved_inputs(str(tmp_path / "volume"), files, cache) as inputs:
            assert [open(i.path, "rb").read() for i in inputs] == [b"abc", data]
            # The bound is full of a file in use: another input finds no room.
            other = b"0123456789"
            with pytest.raises(JobError) as full:
                resolve_inputs("", [object_ref(server.put("p", other), other)], cache)
            assert (full.value.code, full.value.retryable) == ("input_unavailable", True)
        # Released: room again.
        with resolved_inputs("", [object_ref(server.put("p", other), other)], cache) as inputs:
            assert open(inputs[0].path, "rb").read() == other
    finally:
        server.close()


def test_fetch_failures_map_to_the_conventional_codes(tmp_path):
    server = ObjectServer()
    try:
        cache = ObjectCache(str(tmp_path), 1 << 20, signed_url_source, RetryPolicy(tries=2, first_delay=0.01))
        obj = server.put("o", b"tampered")
        with pytest.raises(JobError) as corrupt:
            resolve_inputs("", [FileRef(FILE_ID, "doc", None, 8, sha256(b"original"), "text/plain", obj)], cache)
        assert (corrupt.value.code, corrupt.value.retryable) == ("checksum_mismatch", True)
        server.failing = (1, 404)
        with pytest.raises(JobError) as gone:
            resolve_inputs("", [object_ref(obj, b"tampered")], cache)
        assert (gone.value.code, gone.value.retryable) == ("input_unavailable", True)
        with pytest.raises(JobError) as bad_sha:
            resolve_inputs("", [FileRef(FILE_ID, "doc", None, 8, "../x", "text/plain", obj)], cache)
        assert (bad_sha.value.code, bad_sha.value.retryable) == ("invalid_reference", False)
    finally:
        server.close()


def test_a_url_expiring_within_five_seconds_counts_as_expired():
    now = datetime(2026, 12, 3, 20, 0, tzinfo=timezone.utc)

    def with_expiry(seconds: float) -> FileRef:
        obj = object_at("http://127.0.0.1:1/x")
        obj = type(obj)(obj.store, obj.key, obj.url, now + timedelta(seconds=seconds))
        return FileRef(FILE_ID, f"in {seconds}s", None, 1, "00" * 32, "text/plain", obj)

    volume = file_ref("blobs/f", b"abc")
    assert expiring([volume, with_expiry(6)], now) is None
    assert expiring([volume, with_expiry(6), with_expiry(5)], now).name == "in 5s"
    assert expiring([with_expiry(-1)], now) is not None
