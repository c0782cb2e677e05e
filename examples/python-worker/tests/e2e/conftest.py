"""Two Baton instances serve the whole end-to-end suite: one with the default lease, one with a
2 s lease for the lease tests. Tests that start workers use their own model (so their own job
queue) unless they only need the plain shared worker."""

from __future__ import annotations

import pytest

from harness import Baton


@pytest.fixture(scope="session")
def baton(tmp_path_factory):
    env = Baton(tmp_path_factory.mktemp("baton"))
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="session")
def short_lease(tmp_path_factory):
    """A Baton whose leases run out 2 s after the last heartbeat."""
    env = Baton(tmp_path_factory.mktemp("baton-lease"), BATON_LEASE="2s")
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="session")
def worker(baton):
    return baton.start_worker()
