"""A local cache of object-stored inputs, keyed by SHA-256, so that a model always reads a local
file (the same rules as the Rust runtime's cache):

- bounded: cached files and fetches under way take at most `max_bytes`; the least recently used
  files are evicted to make room, never one a running job holds (`CachedFile`);
- verified: see `fetch`: a file gets its final name only when its size and SHA-256 match;
- single flight: threads wanting the same SHA-256 at the same time share one fetch;
- one process per directory: the index lives in memory and is rebuilt from the directory
  (oldest first, by modification time) when the cache opens; partial files are removed then.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from .fetch import PARTIAL_PREFIX, FetchError, RetryPolicy, Source, fetch
from .messages import ObjectRef

log = logging.getLogger("baton-worker")

SHA256 = re.compile(r"[0-9a-f]{64}")
# How often a request starts over when the file it waited for was evicted before it could take
# it (only under heavy pressure on the bound).
LOOKUPS = 3


class CacheFull(Exception):
    """Files in use and fetches under way leave no room within the bound."""


@dataclass
class _Entry:
    size: int
    pins: int = 0


class _Flight:
    """A fetch under way, which other threads wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: FetchError | None = None


class CachedFile:
    """A cached input held by a running job: not evicted until released."""

    def __init__(self, cache: "ObjectCache", sha256: str):
        self._cache = cache
        self.sha256 = sha256
        self.path = os.path.join(cache.directory, sha256)
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._cache._unpin(self.sha256)


class ObjectCache:
    def __init__(self, directory: str, max_bytes: int, source: Source, retry: RetryPolicy = RetryPolicy()):
        self.directory = directory
        self.max_bytes = max_bytes
        self.source = source
        self.retry = retry
        self._lock = threading.Lock()
        # Least recently used first.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        # Bytes of cached files plus bytes reserved by fetches under way.
        self.used = 0
        self._open()

    def _open(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        found = []
        for entry in os.scandir(self.directory):
            if entry.name.startswith(PARTIAL_PREFIX):
                os.unlink(entry.path)
            elif SHA256.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                meta = entry.stat(follow_symlinks=False)
                found.append((meta.st_mtime, entry.name, meta.st_size))
        for _, sha256, size in sorted(found):
            self._entries[sha256] = _Entry(size)
            self.used += size
        self._evict_for(0)
        log.info("input cache %s: %d files, %d bytes, bound %d", self.directory, len(self._entries), self.used, self.max_bytes)

    @property
    def files(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, obj: ObjectRef, sha256: str, size: int) -> CachedFile:
        """The object as a local file, held until `release()`: from the cache, or fetched (once,
        however many threads ask at the same time) and verified. Raises FetchError, CacheFull,
        or ValueError for a SHA-256 that cannot name a file."""
        if not SHA256.fullmatch(sha256):
            raise ValueError("the recorded SHA-256 is not 64 lowercase hex digits")
        for _ in range(LOOKUPS):
            with self._lock:
                entry = self._entries.get(sha256)
                if entry is not None:
                    if entry.size != size:
                        raise FetchError(
                            "mismatch", f"the cached file with this SHA-256 has {entry.size} bytes, the message records {size}"
                        )
                    entry.pins += 1
                    self._entries.move_to_end(sha256)
                    held = CachedFile(self, sha256)
                    flight = None
                    mine = False
                else:
                    held = None
                    flight = self._flights.get(sha256)
                    mine = flight is None
                    if mine:
                        self._reserve(size)
                        flight = self._flights[sha256] = _Flight()
            if held is not None:
                if _has_size(held.path, size):
                    return held
                # Removed from under the cache: forget it and fetch it again.
                log.warning("a cached input vanished; fetching it again")
                held.release()
                with self._lock:
                    gone = self._entries.pop(sha256, None)
                    if gone is not None:
                        self.used -= gone.size
                continue
            if mine:
                self._fetch(flight, obj, sha256, size)
            else:
                flight.done.wait()
            if flight.error is not None:
                raise flight.error
        raise FetchError("unavailable", "the input was evicted before it could be used; the cache is too small for the load")

    def _fetch(self, flight: _Flight, obj: ObjectRef, sha256: str, size: int) -> None:
        try:
            fetch(self.source, obj, self.directory, sha256, size, self.retry)
        except FetchError as e:
            flight.error = e
        except Exception as e:  # a bug: waiters must still wake up
            flight.error = FetchError("local", f"{type(e).__name__}: {e}")
        finally:
            with self._lock:
                del self._flights[sha256]
                if flight.error is None:
                    self._entries[sha256] = _Entry(size)
                else:
                    self.used -= size
            flight.done.set()

    def _reserve(self, size: int) -> None:
        """Makes room for `size` bytes (under the lock), evicting the least recently used
        unpinned files, or raises CacheFull without evicting anything."""
        free = sum(e.size for e in self._entries.values() if e.pins == 0)
        if self.used - free + size > self.max_bytes:
            raise CacheFull(
                f"the input cache has no room for {size} bytes: {self.used - free} bytes are held by running "
                f"jobs and fetches, BATON_CACHE_MAX_BYTES is {self.max_bytes}"
            )
        self._evict_for(size)
        self.used += size

    def _evict_for(self, size: int) -> None:
        for sha256 in list(self._entries):
            if self.used + size <= self.max_bytes:
                return
            entry = self._entries[sha256]
            if entry.pins:
                continue
            del self._entries[sha256]
            self.used -= entry.size
            # Under the lock, so that a fetch of the same file cannot land before the removal.
            try:
                os.unlink(os.path.join(self.directory, sha256))
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not remove an evicted cache file: %s", e)

    def _unpin(self, sha256: str) -> None:
        with self._lock:
            entry = self._entries.get(sha256)
            if entry is not None:
                entry.pins = max(entry.pins - 1, 0)
                self._entries.move_to_end(sha256)


def _has_size(path: str, size: int) -> bool:
    try:
        return os.stat(path).st_size == size
    except OSError:
        return False
