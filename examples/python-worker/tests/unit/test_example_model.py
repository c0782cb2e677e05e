"""The example model: checksums, text counting, binary inputs, results Baton cannot store, and
stopping when asked."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from baton_worker.example_model import TextCounter, analyse, example_model
from baton_worker.job import Input, Job, JobError, Stopped, check_result
from baton_worker.messages import FileRef, parse_job
from samples import FILE_ID, file_ref, message


def test_a_checksum_mismatch_fails_permanently(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    ref = FileRef(FILE_ID, "doc", "f", 3, hashlib.sha256(b"abd").hexdigest(), "text/plain")
    with pytest.raises(JobError) as mismatch:
        analyse(Input(ref, str(tmp_path / "f")))
    assert (mismatch.value.code, mismatch.value.retryable) == ("checksum_mismatch", False)


def test_text_is_counted_across_chunk_boundaries():
    data = "caf\u00e9  au lait\nsecond\tline \n\nlast words".encode()
    text = data.decode()
    expected = (text.count("\n"), len(text.split()), len(text))
    for cut in range(len(data) + 1):
        counter = TextCounter()
        counter.feed(data[:cut])
        counter.feed(data[cut:])
        counter.feed(b"", final=True)
        assert (counter.lines, counter.words, counter.chars) == expected, cut
    byte_by_byte = TextCounter()
    for b in data:
        byte_by_byte.feed(bytes([b]))
    byte_by_byte.feed(b"", final=True)
    assert (byte_by_byte.lines, byte_by_byte.words, byte_by_byte.chars) == expected


def test_binary_inputs_are_hashed_but_not_counted(tmp_path):
    data = bytes(range(256)) * 10
    (tmp_path / "f").write_bytes(data)
    report = analyse(Input(file_ref("f", data, "application/octet-stream"), str(tmp_path / "f")))
    assert report["sha256_verified"] is True
    assert report["kind"] == "binary"
    assert "lines" not in report


@pytest.mark.parametrize("result", [{"text": "a\0b"}, {"a\0": 1}, [["\0"]], float("nan"), {1, 2}])
def test_results_baton_cannot_store_are_refused(result):
    with pytest.raises(JobError) as refused:
        check_result(result)
    assert (refused.value.code, refused.value.retryable) == ("invalid_result", False)


def test_the_example_model_stops_when_asked(tmp_path):
    data = b"some text\n"
    (tmp_path / "f").write_bytes(data)
    job = Job(message=parse_job(json.dumps(message(params={"sleep_ms": 60_000})).encode()),
              inputs=[Input(file_ref("f", data), str(tmp_path / "f"))])
    threading.Timer(0.2, job.cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        example_model(job)
    assert time.monotonic() - started < 5

    stopped = threading.Event()
    stopped.set()
    with pytest.raises(Stopped):
        analyse(Input(file_ref("f", data), str(tmp_path / "f")), stopped)
