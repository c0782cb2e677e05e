"""Parsing job messages: unknown fields, the heartbeat interval, malformed and newer messages."""

from __future__ import annotations

import json

import pytest

from baton_worker.messages import MalformedMessage, UnsupportedVersion, parse_job
from samples import FILE_ID, JOB_ID, message


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
        parse_job(json.dumps({"version": 2, "job_id": JOB_ID, "attempt": 3, "inputs": {}}).encode())
    assert (newer.value.job_id, newer.value.attempt, newer.value.version) == (JOB_ID, 3, 2)
    with pytest.raises(MalformedMessage):
        parse_job(json.dumps({"version": 2, "attempt": 3}).encode())
    assert parse_job(json.dumps(message(version=1)).encode()).version == 1
