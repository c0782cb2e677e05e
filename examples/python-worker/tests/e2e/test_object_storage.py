"""Baton keeping blobs in object storage (S3 on moto, Azure Blob on Azurite), with no volume, end
to end with the Python worker: inputs fetched through the message's signed URL or with the
worker's own credentials (obstore), and a store that goes away while a worker fetches."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import pytest

from harness import Baton, kinds

DOC = b"kept in object storage\nread by a worker\n"
SHA256 = hashlib.sha256(DOC).hexdigest()

needs_obstore = pytest.mark.skipif(
    importlib.util.find_spec("obstore") is None,
    reason="credentials mode needs obstore (requirements-object-store.txt, Python 3.11 or newer)",
)


def assert_succeeded_on(baton: Baton, job: dict) -> None:
    assert job["status"] == "succeeded", f"{json.dumps(job)}\n{baton.describe()}"
    [read] = job["result"]["inputs"]
    assert (read["size"], read["words"], read["sha256_verified"]) == (len(DOC), 8, True), read
    # Baton wrote the blob to the bucket, under its prefix, by content.
    blobs = [k for k in baton.object_store.keys(baton.bucket) if k.startswith("baton/blobs/")]
    assert len(blobs) == 1 and blobs[0].endswith(f"/{SHA256}"), blobs


def test_a_job_on_object_storage_runs_on_a_python_worker_that_fetches_its_input_through_the_signed_url(
    baton_on_object_store,
):
    baton = baton_on_object_store
    # The worker has neither the volume's blobs nor any credentials: only the URL can serve it.
    baton.start_worker()
    submitted = baton.submit([("doc", "doc.txt", DOC)])
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert_succeeded_on(baton, job)
    assert job["attempt"] == 1
    assert (baton.tmp / "cache-0" / SHA256).is_file(), "the input did not go through the worker's cache"
    assert not any(baton.storage.iterdir()), "Baton wrote to the volume"


@needs_obstore
def test_a_job_on_object_storage_runs_on_a_python_worker_that_reads_its_input_with_its_own_credentials(
    baton_on_object_store,
):
    baton = baton_on_object_store
    model = "example-py-credentials"
    submitted = baton.submit([("doc", "doc.txt", DOC)], model=model)

    def with_a_url_that_cannot_serve(message: dict) -> list[dict]:
        assert message["version"] == 2, message
        [file] = message["files"]
        assert "path" not in file, file
        assert file["object"]["store"] == baton.object_store.store_url(baton.bucket)
        assert file["object"]["key"].startswith("baton/blobs/") and file["object"]["key"].endswith(SHA256)
        # Credentials mode reads by store and key: this URL is never fetched.
        file["object"]["url"] = "http://127.0.0.1:9/never-fetched"
        return [message]

    baton.replace_job_message(model, submitted["id"], with_a_url_that_cannot_serve)
    baton.start_worker(model, BATON_OBJECT_ACCESS="credentials", **baton.object_store.env())
    job = baton.wait_for(submitted["id"], {"succeeded", "failed"})
    assert_succeeded_on(baton, job)
    assert job["attempt"] == 1


def test_a_store_stopped_while_a_worker_fetches_fails_the_attempt_retryably_and_the_job_succeeds_once_it_is_back(
    azurite, tmp_path
):
    # Azurite keeps its blobs across a graceful restart (moto loses them). The session's Azurite
    # is stopped here and always started again.
    baton = Baton(tmp_path, object_store=azurite, BATON_MAX_ATTEMPTS="4")
    try:
        submitted = baton.submit([("doc", "doc.txt", DOC)])
        azurite.stop()
        try:
            worker = baton.start_worker()
            worker.wait_for_log("fetching an input failed", deadline=20)
            # The worker's tries run out; it reports a retryable failure and Baton retries.
            failed = baton.wait_for(submitted["id"], {"queued", "running", "succeeded", "failed", "cancelled"},
                                    deadline=60, until=lambda j: j["attempt"] >= 2 or j["status"] == "failed")
        finally:
            azurite.start()
        assert failed["error"]["code"] == "input_unavailable", json.dumps(failed)
        assert "after 5 tries" in failed["error"]["message"], failed["error"]
        job = baton.wait_for(submitted["id"], {"succeeded", "failed"}, deadline=60)
        assert_succeeded_on(baton, job)
        assert job["attempt"] >= 2
        assert "retried" in kinds(baton.timeline(job["id"]))
    finally:
        baton.close()
