"""Two Baton instances serve most of the end-to-end suite: one with the default lease, one with a
2 s lease for the lease tests. Tests that start workers use their own model (so their own job
queue) unless they only need the plain shared worker. Tests on object storage get a Baton of
their own on a fresh bucket of the session's emulator (started on first use)."""

from __future__ import annotations

import pytest

from harness import Baton
from object_stores import Azurite, Moto


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


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """S3: a private moto for the session; each test makes its own bucket."""
    emulator = Moto(tmp_path_factory.mktemp("moto"))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """Azure Blob: a private Azurite for the session; each test makes its own container."""
    emulator = Azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(params=["s3", "azure"])
def object_store(request):
    """Each object store in turn."""
    return request.getfixturevalue({"s3": "moto", "azure": "azurite"}[request.param])


@pytest.fixture
def baton_on_object_store(object_store, tmp_path):
    """A Baton of its own keeping blobs in a fresh bucket on `object_store`, with no volume."""
    env = Baton(tmp_path, object_store=object_store)
    try:
        yield env
    finally:
        env.close()
