"""The cache of object-stored inputs, fetched from a local HTTP server standing in for signed
URLs: verification, single flight across threads, retries, the LRU bound, files in use kept."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from baton_worker.cache import CacheFull, ObjectCache
from baton_worker.fetch import FetchError, RetryPolicy, signed_url_source
from object_server import ObjectServer, object_at, sha256

QUICK = RetryPolicy(tries=3, first_delay=0.02)


@pytest.fixture
def server():
    server = ObjectServer()
    yield server
    server.close()


def cache_at(path, max_bytes: int, retry: RetryPolicy = QUICK) -> ObjectCache:
    return ObjectCache(str(path), max_bytes, signed_url_source, retry)


def listing(path) -> list[str]:
    return sorted(os.listdir(path))


def wait_until(what: str, check, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def test_a_fetched_input_is_verified_and_kept_under_its_sha256(server, tmp_path):
    cache = cache_at(tmp_path, 1 << 20)
    data = b"hello from object storage" * 1000
    obj = server.put("a", data)

    held = cache.get(obj, sha256(data), len(data))
    assert held.path == str(tmp_path / sha256(data))
    with open(held.path, "rb") as f:
        assert f.read() == data
    held.release()
    cache.get(obj, sha256(data), len(data)).release()
    assert server.gets == 1, "the second request is served from the cache"
    assert listing(tmp_path) == [sha256(data)]


def test_bytes_that_do_not_match_the_recorded_sha256_or_size_are_refused_and_not_kept(server, tmp_path):
    cache = cache_at(tmp_path, 1 << 20)
    obj = server.put("a", b"tampered bytes")
    for recorded_sha, recorded_size in [(sha256(b"original bytes"), 14), (sha256(b"tampered bytes"), 13),
                                        (sha256(b"tampered bytes"), 15)]:
        with pytest.raises(FetchError) as refused:
            cache.get(obj, recorded_sha, recorded_size)
        assert refused.value.kind == "corrupt"
    assert server.gets == 3, "a mismatch is not fetched again within the attempt"
    assert listing(tmp_path) == []
    assert cache.used == 0


def test_concurrent_threads_wanting_one_input_share_a_single_get(server, tmp_path):
    cache = cache_at(tmp_path, 1 << 20)
    data = bytes(256 * 1024)
    obj = server.put("a", data)
    server.open.clear()
    results: list = []

    def want() -> None:
        try:
            results.append(cache.get(obj, sha256(data), len(data)).path)
        except Exception as e:  # recorded for the assertion below
            results.append(e)

    threads = [threading.Thread(target=want) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until("the fetch reached the server", lambda: server.gets >= 1)
    server.open.set()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [str(tmp_path / sha256(data))] * 8
    assert server.gets == 1, "eight threads, one GET"


def test_server_errors_are_tried_again_until_the_input_arrives(server, tmp_path):
    cache = cache_at(tmp_path, 1 << 20)
    obj = server.put("a", b"eventually")
    server.failing = (2, 503)
    held = cache.get(obj, sha256(b"eventually"), 10)
    assert open(held.path, "rb").read() == b"eventually"
    assert server.gets == 3, "two 503 answers, then the bytes"


def test_a_refused_url_is_not_tried_again(server, tmp_path):
    cache = cache_at(tmp_path, 1 << 20)
    obj = server.put("a", b"expired")
    server.failing = (1, 403)
    with pytest.raises(FetchError) as refused:
        cache.get(obj, sha256(b"expired"), 7)
    assert (refused.value.kind, refused.value.message) == ("unavailable", "GET answered 403")
    assert server.gets == 1


def test_an_unreachable_store_is_tried_again_then_reported_unavailable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port now: every connection is refused.
    cache = cache_at(tmp_path, 1 << 20, RetryPolicy(tries=4, first_delay=0.02))
    with pytest.raises(FetchError) as down:
        cache.get(object_at(f"http://127.0.0.1:{port}/secret-signature"), sha256(b"x"), 1)
    assert down.value.kind == "unavailable"
    assert down.value.message.endswith("(after 4 tries)"), down.value.message
    assert "secret-signature" not in down.value.message, "the signed URL stays out of errors"
    assert listing(tmp_path) == [] and cache.used == 0


def test_the_least_recently_used_inputs_are_evicted_to_stay_within_the_bound(server, tmp_path):
    cache = cache_at(tmp_path, 30)
    names = ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc", "dddddddddd"]
    objects = [(server.put(n, n.encode()), sha256(n.encode())) for n in names]
    for obj, sha in objects[:3]:
        cache.get(obj, sha, 10).release()
    cache.get(*objects[0], 10).release()  # `a` again: `b` is now the least recently used
    assert server.gets == 3
    cache.get(*objects[3], 10).release()
    assert listing(tmp_path) == sorted([objects[0][1], objects[2][1], objects[3][1]]), "`b` was evicted"
    assert cache.used == 30


def test_inputs_held_by_running_jobs_are_never_evicted(server, tmp_path):
    cache = cache_at(tmp_path, 20)
    names = ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc", "dddddddddd"]
    objects = [(server.put(n, n.encode()), sha256(n.encode())) for n in names]
    held_a = cache.get(*objects[0], 10)
    cache.get(*objects[1], 10).release()
    held_c = cache.get(*objects[2], 10)  # `a` is older but held: `b` goes
    assert os.path.exists(held_a.path) and os.path.exists(held_c.path)
    assert not (tmp_path / objects[1][1]).exists()
    with pytest.raises(CacheFull):
        cache.get(*objects[3], 10)
    assert os.path.exists(held_a.path) and os.path.exists(held_c.path)
    held_a.release()
    cache.get(*objects[3], 10).release()
    assert not os.path.exists(held_a.path), "released, `a` could go"
    assert os.path.exists(held_c.path)


def test_a_reopened_cache_keeps_its_files_drops_partial_ones_and_shrinks_to_its_bound(server, tmp_path):
    cache = cache_at(tmp_path, 100)
    names = ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"]
    for n in names:
        cache.get(server.put(n, n.encode()), sha256(n.encode()), 10).release()
    (tmp_path / ".partial-left-by-a-crash").write_bytes(b"half")

    reopened = cache_at(tmp_path, 20)
    assert reopened.files == 2
    assert not (tmp_path / ".partial-left-by-a-crash").exists()
    survivor = next(n for n in names if (tmp_path / sha256(n.encode())).exists())
    gets = server.gets
    reopened.get(server.put(survivor, survivor.encode()), sha256(survivor.encode()), 10).release()
    assert server.gets == gets, "served from the reopened cache"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "", "A" * 64])
def test_a_sha256_that_is_not_hex_cannot_name_a_cache_file(server, tmp_path, bad):
    cache = cache_at(tmp_path, 1 << 20)
    with pytest.raises(ValueError):
        cache.get(server.put("a", b"x"), bad, 1)
    assert server.gets == 0


def test_credentials_mode_reads_the_object_by_store_and_key_into_the_cache(server, tmp_path, monkeypatch):
    """The S3 client reads `store` + `key` with the worker's credentials from the standard
    variables, here pointed at the local server (path-style: `/{bucket}/{key}`); the URL in the
    message is not used."""
    pytest.importorskip("obstore", reason="credentials mode needs obstore (Python 3.11+)")
    from baton_worker.fetch import CredentialsSource

    for name, value in {"AWS_ENDPOINT": server.base, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    data = b"read with the worker's own credentials"
    server.objects["test-bucket/prefix/blobs/k"] = data
    obj = object_at("http://127.0.0.1:1/not-used")
    obj = type(obj)("s3://test-bucket/prefix", "prefix/blobs/k", obj.url, obj.expires_at)
    cache = ObjectCache(str(tmp_path), 1 << 20, CredentialsSource(), QUICK)

    held = cache.get(obj, sha256(data), len(data))
    assert open(held.path, "rb").read() == data
    assert server.gets == 1

    missing = type(obj)("s3://test-bucket/prefix", "prefix/blobs/gone", obj.url, obj.expires_at)
    with pytest.raises(FetchError) as gone:
        cache.get(missing, sha256(b"gone"), 4)
    assert gone.value.kind == "unavailable"
