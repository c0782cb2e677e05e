"""Parsing job messages: unknown fields, the heartbeat interval, malformed and newer messages."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from baton_worker.messages import MalformedMessage, UnsupportedVersion, parse_job
from samples import FILE_ID, JOB_ID, message, object_file


def test_a_job_message_parses_and_unknown_fields_are_ignored():
    body = message(priority="high")
    body["files"][0]["etag"] = "x"
    job = parse_job(json.dumps(body).encode())
    assert (job.job_id, job.attempt, job.model, job.params) == (JOB_ID, 2, "example-py", {"lang": "en"})
    assert job.files[0].path == "blobs/default/ab/cd/abcd"


def test_the_heartbeat_interval_comes_from_the_message_else_the_fallback():
    current = parse_job(json.dumps(message(lease_ms=20_000, heartbeat_interval_ms=6_666)).encode())
    assert (current.lease_ms, current.heartbeat_interval(fallback=10)) == (20_000, 6.666)
    # Published by a Baton older than these fields (or with null, or a zero the schema forbids).
    for old in [message(), message(lease_ms=None, heartbeat_interval_ms=None), message(heartbeat_interval_ms=0)]:
        assert parse_job(json.dumps(old).encode()).heartbeat_interval(fallback=10) == 10


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
        parse_job(body)


def test_a_newer_version_is_unsupported_but_identifies_the_attempt():
    # A newer version may change any field: only job_id and attempt are read, to report it.
    with pytest.raises(UnsupportedVersion) as newer:
        parse_job(json.dumps({"version": 3, "job_id": JOB_ID, "attempt": 3, "inputs": {}}).encode())
    assert (newer.value.job_id, newer.value.attempt, newer.value.version) == (JOB_ID, 3, 3)
    with pytest.raises(MalformedMessage):
        parse_job(json.dumps({"version": 3, "attempt": 3}).encode())
    assert parse_job(json.dumps(message(version=1)).encode()).version == 1
    assert parse_job(json.dumps(message(version=2)).encode()).version == 2


def test_a_version_2_file_in_object_storage_parses_without_a_path():
    body = message(version=2, files=[object_file(expires_at="2026-12-03T20:00:00.123456789Z")])
    [file] = parse_job(json.dumps(body).encode()).files
    assert file.path is None
    assert (file.object.store, file.object.key) == ("s3://bucket/prefix", "prefix/blobs/default/ab/cd/abcd")
    assert file.object.expires_at == datetime(2026, 12, 3, 20, 0, 0, 123456, tzinfo=timezone.utc)
    assert "X-Amz-Signature" not in repr(file), "the signed URL stays out of logs"


def test_files_with_neither_or_both_locations_parse_and_fail_later():
    # They are job messages: the attempt fails with invalid_reference rather than being dropped.
    both = dict(object_file(), path="blobs/x")
    neither = {k: v for k, v in object_file().items() if k != "object"}
    files = parse_job(json.dumps(message(version=2, files=[both, neither])).encode()).files
    assert (files[0].path, files[0].object is not None) == ("blobs/x", True)
    assert (files[1].path, files[1].object) == (None, None)


@pytest.mark.parametrize(
    "broken",
    [
        {"url": 1},
        {"expires_at": "tomorrow"},
        {"expires_at": "2026-12-03 20:00:00Z"},
        {"store": None},
    ],
)
def test_a_malformed_object_reference_is_refused(broken):
    file = object_file()
    file["object"] = {**file["object"], **broken}
    with pytest.raises(MalformedMessage):
        parse_job(json.dumps(message(version=2, files=[file])).encode())
