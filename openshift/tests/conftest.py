"""Shared fixtures: the templates, processed with the parameters an operator would give."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ocp_template  # noqa: E402
import support  # noqa: E402

# The two main templates: uploads on a ReadWriteMany volume, or in object storage only.
TEMPLATE_FILES = {"volume": support.TEMPLATE, "object": support.OBJECT_TEMPLATE}

# The parameters without a default, as an operator gives them.
REQUIRED_PARAMS = {
    "BROKER_IMAGE": "baton/broker:0.1.0",
    "WORKER_IMAGE": "baton/worker:0.1.0",
    "STORAGE_CLASS": "cephfs",
    "DATABASE_URL": "postgres://baton:s3cret@postgres.db.svc:5432/baton",
    "AMQP_URL": "amqp://baton:s3cret@rabbitmq.mq.svc:5672/%2f",
}
OBJECT_REQUIRED_PARAMS = {
    **{k: v for k, v in REQUIRED_PARAMS.items() if k != "STORAGE_CLASS"},
    "STORAGE_URL": "s3://baton-uploads/prod",
}
REQUIRED = {"volume": REQUIRED_PARAMS, "object": OBJECT_REQUIRED_PARAMS}

PVC_ASSETS = (
    '{"name":"assets","persistentVolumeClaim":{"claimName":"resnet-weights","readOnly":true}}'
)
S3 = {
    "AWS_ENDPOINT": "https://s3.eu-west-1.amazonaws.com",
    "AWS_REGION": "eu-west-1",
    "STORAGE_SECRET": "baton-s3-credentials",
}
AZURE_WORKLOAD_IDENTITY = {
    "STORAGE_URL": "az://uploads/baton",
    "AZURE_STORAGE_ACCOUNT_NAME": "batonprod",
    "AZURE_WORKLOAD_IDENTITY": "true",
    "AZURE_CLIENT_ID": "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
}
CUSTOM = {
    "NAME": "baton-prod",
    "BROKER_REPLICAS": "4",
    "ROUTE_HOST": "baton.apps.example",
    "SHUTDOWN_TIMEOUT": "2m",
    "BROKER_GRACE_PERIOD": "180",
    "QUEUE_PREFIX": "prod.",
}

# Parameter sets every processed-object test runs with, per template.
VARIANTS = {
    "volume": {
        "defaults": {},
        "fetch-assets": {"ASSETS_URL": "https://models.example/resnet.tar.gz", "MODEL": "resnet"},
        "pvc-assets": {"ASSETS_VOLUME": PVC_ASSETS, "MODEL": "resnet-50", "WORKER_REPLICAS": "3"},
        "custom": CUSTOM,
        # Local-first: the volume, copied to S3 in the background.
        "s3-replica": {**S3, "STORAGE_REPLICA_URL": "s3://baton-replica/prod"},
        # A migration's last steps: the volume still mounted, new uploads in Azure Blob.
        "azure-after-migration": {**AZURE_WORKLOAD_IDENTITY, "CONTENT_REDIRECT": "on"},
    },
    "object": {
        "s3": {**S3, "CONTENT_REDIRECT": "on", "BROKER_REPLICAS": "6"},
        "azure-workload-identity": {
            **AZURE_WORKLOAD_IDENTITY,
            "WORKER_OBJECT_ACCESS": "credentials",
            "WORKER_AZURE_WORKLOAD_IDENTITY": "true",
            "WORKER_AZURE_CLIENT_ID": "7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d",
            "WORKER_CACHE_SIZE": "60Gi",
            "WORKER_CACHE_MAX_BYTES": str(40 * 2**30),
        },
        "custom-pvc-assets": {**CUSTOM, "ASSETS_VOLUME": PVC_ASSETS, "MODEL": "resnet-50"},
    },
}
VARIANT_IDS = [(mode, name) for mode in VARIANTS for name in sorted(VARIANTS[mode])]


class Variant(NamedTuple):
    """One template processed with one parameter set."""

    mode: str  # "volume" or "object"
    given: dict
    values: dict
    objects: list


_loaded: dict[str, dict] = {}


def load(mode: str) -> dict:
    if mode not in _loaded:
        _loaded[mode] = ocp_template.load(TEMPLATE_FILES[mode])
    return _loaded[mode]


@pytest.fixture(scope="session")
def template() -> dict:
    return load("volume")


@pytest.fixture(scope="session")
def object_template() -> dict:
    return load("object")


@pytest.fixture(scope="session", params=sorted(TEMPLATE_FILES))
def any_template(request) -> tuple[str, dict]:
    """(mode, template) for each of the two main templates."""
    return request.param, load(request.param)


@pytest.fixture(scope="session")
def keda_template() -> dict:
    return ocp_template.load(support.KEDA_TEMPLATE)


def _process(mode: str, name: str) -> Variant:
    given = {**REQUIRED[mode], **VARIANTS[mode][name]}
    template = load(mode)
    return Variant(mode, given, ocp_template.parameter_values(template, given), ocp_template.process(template, given))


@pytest.fixture(scope="session", params=VARIANT_IDS, ids=[f"{m}-{n}" for m, n in VARIANT_IDS])
def variant(request) -> Variant:
    """A main template processed with one of its parameter sets."""
    return _process(*request.param)


@pytest.fixture(scope="session", params=sorted(VARIANTS["volume"]))
def volume_variant(request) -> Variant:
    """baton-template.yaml processed with one of its parameter sets."""
    return _process("volume", request.param)


@pytest.fixture(scope="session", params=sorted(VARIANTS["object"]))
def object_variant(request) -> Variant:
    """baton-object-storage-template.yaml processed with one of its parameter sets."""
    return _process("object", request.param)


@pytest.fixture(scope="session")
def objects(template) -> list[dict]:
    return ocp_template.process(template, REQUIRED_PARAMS)


@pytest.fixture(scope="session")
def object_objects(object_template) -> list[dict]:
    return ocp_template.process(object_template, OBJECT_REQUIRED_PARAMS)


def find(objects, kind, component=None):
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and (component is None or o["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]
    return found


def volumes_by_name(spec):
    return {v["name"]: v for v in spec.get("volumes", [])}


def broker_parts(objects):
    (broker,) = find(objects, "Deployment", "broker")
    spec = broker["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return broker, spec, container


def worker_parts(objects):
    (worker,) = find(objects, "Deployment", "worker")
    spec = worker["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    return worker, spec, container, env
