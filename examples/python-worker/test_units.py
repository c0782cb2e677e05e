"""Unit tests of the worker's protocol handling: no broker, no services."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time

import pytest

import worker
from worker import FileRef, Input, JobError, MalformedMessage

JOB_ID = "01a206a0-2b1d-727c-8d29-c48d7310d382"
FILE_ID = "01a206a0-2b1d-727c-8d29-c48d7310d383"


def message(**overrides) -> dict:
    body = {
        "version": 1,
        "job_id": JOB_ID,
        "model": "example-py",
        "params": {"lang": "en"},
        "attempt": 2,
        "files": [
            {
                "id": FILE_ID,
                "name": "doc",
                "path": "blobs/default/ab/cd/abcd",
                "size": 3,
                "sha256": "00" * 32,
                "content_type": "text/plain",
            }
        ],
    }
    body.update(overrides)
    return body


def test_a_job_message_parses_and_unknown_fields_are_ignored():
    body = message(priority="high")
    body["files"][0]["etag"] = "x"
    job = worker.parse_job(json.dumps(body).encode())
    assert (job.job_id, job.attempt, job.model, job.params) == (JOB_ID, 2, "example-py", {"lang": "en"})
    assert job.files[0].path == "blobs/default/ab/cd/abcd"


def test_the_heartbeat_interval_comes_from_the_message_else_the_fallback():
    current = worker.parse_job(json.dumps(message(lease_ms=20_000, heartbeat_interval_ms=6_666)).encode())
    assert (current.lease_ms, current.heartbeat_interval(fallback=10)) == (20_000, 6.666)
    # Published by a Baton older than these fields (or with null, or a zero the schema forbids).
    for old in [message(), message(lease_ms=None, heartbeat_interval_ms=None), message(heartbeat_interval_ms=0)]:
        assert worker.parse_job(json.dumps(old).encode()).heartbeat_interval(fallback=10) == 10


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        json.dumps({k: v for k, v in message().items() if k != "attempt"}).encode(),
        json.dumps(message(attempt="1")).encode(),
        json.dumps(message(attempt=True)).encode(),
        json.dumps(message(attempt=-1)).encode(),
        json.dumps(message(job_id="job-1")).encode(),
        json.dumps(message(params=[])).encode(),
        json.dumps(message(files=[{"id": FILE_ID}])).encode(),
        json.dumps(message(files=["a"])).encode(),
        json.dumps(message(heartbeat_interval_ms="10s")).encode(),
        json.dumps(message(lease_ms=-1)).encode(),
    ],
)
def test_malformed_job_messages_are_refused(body):
    with pytest.raises(MalformedMessage):
        worker.parse_job(body)


@pytest.mark.parametrize("path", ["blobs/default/ab/cd/abcd", "a", "a.b/c..d"])
def test_plain_relative_paths_are_safe(path):
    assert worker.is_safe_path(path)


@pytest.mark.parametrize("path", ["", "/etc/passwd", "a/../b", "..", "a//b", "./a", "a/.", "a/", "a\\b", "a\0b"])
def test_paths_that_could_escape_are_unsafe(path):
    assert not worker.is_safe_path(path)


def file_ref(path: str, data: bytes, content_type: str = "text/plain") -> FileRef:
    return FileRef(FILE_ID, "doc", path, len(data), hashlib.sha256(data).hexdigest(), content_type)


def test_inputs_resolve_under_the_mount_and_are_checked(tmp_path):
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "f").write_bytes(b"abc")
    [resolved] = worker.resolve_inputs(str(tmp_path), [file_ref("blobs/f", b"abc")])
    assert resolved.path == str(tmp_path.resolve() / "blobs" / "f")

    with pytest.raises(JobError) as unsafe:
        worker.resolve_inputs(str(tmp_path), [file_ref("../f", b"abc")])
    assert (unsafe.value.code, unsafe.value.retryable) == ("invalid_reference", False)

    with pytest.raises(JobError) as wrong_size:
        worker.resolve_inputs(str(tmp_path), [file_ref("blobs/f", b"abcd")])
    assert (wrong_size.value.code, wrong_size.value.retryable) == ("input_mismatch", False)

    with pytest.raises(JobError) as missing:
        worker.resolve_inputs(str(tmp_path), [file_ref("blobs/nope", b"abc")])
    assert (missing.value.code, missing.value.retryable) == ("input_unavailable", True)

    with pytest.raises(JobError) as directory:
        worker.resolve_inputs(str(tmp_path), [FileRef(FILE_ID, "doc", "blobs", 0, "", "text/plain")])
    assert directory.value.code == "input_mismatch"


def test_symlinks_out_of_the_mount_are_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret")
    mount = tmp_path / "mount"
    mount.mkdir()
    os.symlink(outside, mount / "link")
    with pytest.raises(JobError) as escaped:
        worker.resolve_inputs(str(mount), [file_ref("link", b"secret")])
    assert escaped.value.code == "invalid_reference"


def test_a_checksum_mismatch_fails_permanently(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    ref = FileRef(FILE_ID, "doc", "f", 3, hashlib.sha256(b"abd").hexdigest(), "text/plain")
    with pytest.raises(JobError) as mismatch:
        worker.analyse(Input(ref, str(tmp_path / "f")))
    assert (mismatch.value.code, mismatch.value.retryable) == ("checksum_mismatch", False)


def test_text_is_counted_across_chunk_boundaries():
    data = "caf\u00e9  au lait\nsecond\tline \n\nlast words".encode()
    text = data.decode()
    expected = (text.count("\n"), len(text.split()), len(text))
    for cut in range(len(data) + 1):
        counter = worker.TextCounter()
        counter.feed(data[:cut])
        counter.feed(data[cut:])
        counter.feed(b"", final=True)
        assert (counter.lines, counter.words, counter.chars) == expected, cut
    byte_by_byte = worker.TextCounter()
    for b in data:
        byte_by_byte.feed(bytes([b]))
    byte_by_byte.feed(b"", final=True)
    assert (byte_by_byte.lines, byte_by_byte.words, byte_by_byte.chars) == expected


def test_binary_inputs_are_hashed_but_not_counted(tmp_path):
    data = bytes(range(256)) * 10
    (tmp_path / "f").write_bytes(data)
    report = worker.analyse(Input(file_ref("f", data, "application/octet-stream"), str(tmp_path / "f")))
    assert report["sha256_verified"] is True
    assert report["kind"] == "binary"
    assert "lines" not in report


@pytest.mark.parametrize("result", [{"text": "a\0b"}, {"a\0": 1}, [["\0"]], float("nan"), {1, 2}])
def test_results_baton_cannot_store_are_refused(result):
    with pytest.raises(JobError) as refused:
        worker.check_result(result)
    assert (refused.value.code, refused.value.retryable) == ("invalid_result", False)


def test_configuration_follows_the_rust_worker():
    config = worker.Config.from_env({})
    assert (config.model, config.queue_prefix, config.prefetch) == ("example-py", "baton.", 1)
    assert config.job_queue == "baton.jobs.example-py"
    assert config.events_queue == "baton.events"
    assert config.control_exchange == "baton.control"
    assert (config.fallback_heartbeat_interval, config.ack_deadline, config.shutdown_timeout) == (10, 1200, 30)
    tuned = worker.Config.from_env({"BATON_WORKER_HEARTBEAT": "500ms", "BATON_WORKER_ACK_DEADLINE": "2h",
                                    "BATON_WORKER_ID": "gpu-3/a"})
    assert (tuned.fallback_heartbeat_interval, tuned.ack_deadline, tuned.worker_id) == (0.5, 7200, "gpu-3/a")
    for bad in [{"BATON_WORKER_MODEL": "Bad"}, {"BATON_WORKER_PREFETCH": "0"},
                {"BATON_WORKER_SHUTDOWN_TIMEOUT": "soon"}, {"BATON_AMQP_URL": "http://x"},
                {"BATON_WORKER_HEARTBEAT": "10"}, {"BATON_WORKER_HEARTBEAT": "0s"},
                {"BATON_WORKER_ACK_DEADLINE": "1d"}]:
        with pytest.raises(worker.ConfigError):
            worker.Config.from_env(bad)


def test_durations_need_a_unit_and_a_positive_value():
    assert worker.parse_duration("500ms") == 0.5
    assert worker.parse_duration("30s") == 30
    assert worker.parse_duration("20m") == 1200
    assert worker.parse_duration("2h") == 7200
    for bad in ["30", "0s", "1d", "-1s", "1.5s", ""]:
        assert worker.parse_duration(bad) is None, bad


def test_worker_ids_are_unique_per_process_start():
    first, second = worker.default_worker_id(), worker.default_worker_id()
    assert re.fullmatch(rf"[^/]+/{os.getpid()}-[0-9a-f]{{4}}", first), first
    ids = {worker.default_worker_id() for _ in range(50)}
    assert len(ids) > 1 and first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]


def test_job_queues_are_declared_with_batons_exact_arguments():
    assert worker.job_queue_arguments("p.") == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 0,
        "x-dead-letter-exchange": "p.dead-letter",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_a_newer_version_is_unsupported_but_identifies_the_attempt():
    # A newer version may change any field: only job_id and attempt are read, to report it.
    with pytest.raises(worker.UnsupportedVersion) as newer:
        worker.parse_job(json.dumps({"version": 2, "job_id": JOB_ID, "attempt": 3, "inputs": {}}).encode())
    assert (newer.value.job_id, newer.value.attempt, newer.value.version) == (JOB_ID, 3, 2)
    with pytest.raises(MalformedMessage):
        worker.parse_job(json.dumps({"version": 2, "attempt": 3}).encode())
    assert worker.parse_job(json.dumps(message(version=1)).encode()).version == 1


def test_the_example_model_stops_when_asked(tmp_path):
    data = b"some text\n"
    (tmp_path / "f").write_bytes(data)
    job = worker.Job(message=worker.parse_job(json.dumps(message(params={"sleep_ms": 60_000})).encode()),
                     inputs=[Input(file_ref("f", data), str(tmp_path / "f"))])
    threading.Timer(0.2, job.cancel.set).start()
    started = time.monotonic()
    with pytest.raises(worker.Stopped):
        worker.example_model(job)
    assert time.monotonic() - started < 5

    stopped = threading.Event()
    stopped.set()
    with pytest.raises(worker.Stopped):
        worker.analyse(Input(file_ref("f", data), str(tmp_path / "f")), stopped)
