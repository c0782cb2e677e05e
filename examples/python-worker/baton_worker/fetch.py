"""Fetching one object into the cache directory: its bytes streamed to a temporary file, counted
and hashed on the way, renamed to the SHA-256 only when both match, and removed otherwise.
Failures that may pass (connection errors, timeouts, cut transfers, 5xx, 429, 408) are tried
again with a growing pause.

Sources: a plain GET of the signed URL (`signed-url`, the standard library only), or the store
itself with the worker's own credentials (`credentials`, through `obstore`, installed from
requirements-object-store.txt)."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from .config import ConfigError
from .messages import ObjectRef

log = logging.getLogger("baton-worker")

PARTIAL_PREFIX = ".partial-"
CHUNK = 1 << 20
# A connection that cannot be made, or stays silent, this long is given up (and tried again).
SOCKET_TIMEOUT = 30.0


class FetchError(Exception):
    """A fetch that failed for good. `kind` says why: `unavailable`, `corrupt`, `local` (the cache
    directory) or `invalid` (the reference cannot name an object)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class Retryable(Exception):
    """One try failed in a way another try may not."""


@dataclass(frozen=True)
class RetryPolicy:
    tries: int = 5
    first_delay: float = 0.5

    def delays(self) -> Iterator[float]:
        """Pauses between tries: doubling from `first_delay`, ±20% jitter (0.5, 1, 2, 4 s by
        default: about 7.5 s in all, like the Rust runtime)."""
        for n in range(max(self.tries - 1, 0)):
            yield self.first_delay * (2 ** min(n, 16)) * (0.8 + 0.4 * random.random())


# A source opens an object and yields its bytes in chunks.
Source = Callable[[ObjectRef], Iterable[bytes]]


def signed_url_source(obj: ObjectRef) -> Iterator[bytes]:
    """A GET of the signed URL. Errors never quote the URL: it grants access."""
    request = urllib.request.Request(obj.url, method="GET")
    try:
        response = urllib.request.urlopen(request, timeout=SOCKET_TIMEOUT)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code >= 500 or e.code in (408, 429):
            raise Retryable(f"GET answered {e.code}") from None
        # 403 for an expired or revoked URL, 404 for an object that is gone.
        raise FetchError("unavailable", f"GET answered {e.code}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise Retryable(f"GET failed: {reason}") from None
    with response:
        try:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    return
                yield chunk
        except (OSError, http.client.HTTPException) as e:
            raise Retryable(f"reading the object failed: {type(e).__name__}: {e}") from None


class CredentialsSource:
    """Reads objects by `store` and `key` with the worker's own credentials, taken by obstore
    from the standard variables (AWS_*, AZURE_*, workload identity). One client per store."""

    def __init__(self) -> None:
        try:
            import obstore  # noqa: F401  (optional: only this mode needs it)
        except ImportError:
            raise ConfigError(
                "BATON_OBJECT_ACCESS=credentials needs the obstore package "
                "(pip install -r requirements-object-store.txt; Python 3.11 or newer)"
            ) from None
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()

    def _client(self, store: str):
        from obstore.store import AzureStore, S3Store

        with self._lock:
            client = self._clients.get(store)
            if client is not None:
                return client
            scheme, _, rest = store.partition("://")
            name = rest.split("/", 1)[0]
            options = {
                # No retries inside the client: a whole fetch is tried again, cut transfers
                # included.
                "retry_config": {"max_retries": 0},
                "client_options": _client_options(scheme),
            }
            if scheme == "s3" and name:
                client = S3Store(name, **options)
            elif scheme == "az" and name:
                client = AzureStore(name, **options)
            else:
                raise FetchError("invalid", f"object store {store!r} is neither s3:// nor az://")
            self._clients[store] = client
            return client

    def __call__(self, obj: ObjectRef) -> Iterator[bytes]:
        import obstore
        from obstore.exceptions import (
            InvalidPathError,
            NotFoundError,
            PermissionDeniedError,
            UnauthenticatedError,
        )

        client = self._client(obj.store)
        try:
            result = obstore.get(client, obj.key)
            for chunk in result.stream(min_chunk_size=CHUNK):
                yield bytes(chunk)
        except NotFoundError:
            raise FetchError("unavailable", "the object does not exist") from None
        except (PermissionDeniedError, UnauthenticatedError) as e:
            raise FetchError("unavailable", f"the worker's credentials may not read the object: {e}") from None
        except InvalidPathError as e:
            raise FetchError("invalid", f"invalid object key: {e}") from None
        except Exception as e:  # obstore's other errors: network, timeouts, the store failing
            raise Retryable(f"{type(e).__name__}: {e}") from None


def _client_options(scheme: str) -> dict:
    """The client's timeouts: its total timeout covers a whole body, so generous for large
    inputs, with a read timeout for stalls. Passing client options replaces the ones the client
    would read from the environment, so the HTTP switch of emulators is carried over."""
    options: dict = {"timeout": "6h", "read_timeout": "60s", "connect_timeout": "5s"}
    allow_http = os.environ.get({"s3": "AWS_ALLOW_HTTP", "az": "AZURE_ALLOW_HTTP"}.get(scheme, ""), "")
    if allow_http.lower() == "true" or (scheme == "az" and os.environ.get("AZURE_STORAGE_USE_EMULATOR", "").lower() == "true"):
        options["allow_http"] = True
    return options


def fetch(source: Source, obj: ObjectRef, directory: str, sha256: str, size: int, retry: RetryPolicy) -> None:
    """Fetches the object into `directory/sha256`, trying again what may pass; raises FetchError."""
    delays = retry.delays()
    tries = 0
    while True:
        tries += 1
        try:
            _store(source(obj), directory, sha256, size)
            return
        except Retryable as e:
            delay = next(delays, None)
            if delay is None:
                raise FetchError("unavailable", f"{e} (after {tries} tries)") from None
            log.info("fetching an input failed (%s); trying again in %d ms", e, round(delay * 1000))
            time.sleep(delay)


def _store(chunks: Iterable[bytes], directory: str, sha256: str, size: int) -> None:
    partial = os.path.join(directory, f"{PARTIAL_PREFIX}{sha256}-{random.getrandbits(64):016x}")
    kept = False
    try:
        try:
            out = open(partial, "wb")
        except OSError as e:
            raise FetchError("local", f"writing to the cache failed: {e.strerror}") from None
        with out:
            digest = hashlib.sha256()
            received = 0
            for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise FetchError("corrupt", f"the object has more than the {size} bytes recorded")
                digest.update(chunk)
                try:
                    out.write(chunk)
                except OSError as e:
                    raise FetchError("local", f"writing to the cache failed: {e.strerror}") from None
            if received != size:
                raise FetchError("corrupt", f"the object has {received} bytes, {size} recorded")
            if digest.hexdigest() != sha256:
                raise FetchError("corrupt", "the object's bytes do not match its recorded SHA-256")
            try:
                out.flush()
                # Durable before it gets its final name: the name alone vouches for the content.
                os.fsync(out.fileno())
            except OSError as e:
                raise FetchError("local", f"writing to the cache failed: {e.strerror}") from None
        os.replace(partial, os.path.join(directory, sha256))
        kept = True
    finally:
        if not kept:
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not remove a partial cache file: %s", e)

