"""Shared fixtures: the templates, processed with the parameters an operator would give."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ocp_template  # noqa: E402
import support  # noqa: E402

# The parameters without a default, as an operator gives them.
REQUIRED_PARAMS = {
    "BROKER_IMAGE": "baton/broker:0.1.0",
    "WORKER_IMAGE": "baton/worker:0.1.0",
    "STORAGE_CLASS": "cephfs",
    "DATABASE_URL": "postgres://baton:s3cret@postgres.db.svc:5432/baton",
    "AMQP_URL": "amqp://baton:s3cret@rabbitmq.mq.svc:5672/%2f",
}

PVC_ASSETS = (
    '{"name":"assets","persistentVolumeClaim":{"claimName":"resnet-weights","readOnly":true}}'
)

# Parameter sets every processed-object test runs with.
VARIANTS = {
    "defaults": {},
    "fetch-assets": {"ASSETS_URL": "https://models.example/resnet.tar.gz", "MODEL": "resnet"},
    "pvc-assets": {"ASSETS_VOLUME": PVC_ASSETS, "MODEL": "resnet-50", "WORKER_REPLICAS": "3"},
    "custom": {
        "NAME": "baton-prod",
        "BROKER_REPLICAS": "4",
        "ROUTE_HOST": "baton.apps.example",
        "SHUTDOWN_TIMEOUT": "2m",
        "BROKER_GRACE_PERIOD": "180",
        "QUEUE_PREFIX": "prod.",
    },
}


@pytest.fixture(scope="session")
def template() -> dict:
    return ocp_template.load(support.TEMPLATE)


@pytest.fixture(scope="session")
def keda_template() -> dict:
    return ocp_template.load(support.KEDA_TEMPLATE)


@pytest.fixture(scope="session", params=sorted(VARIANTS), ids=sorted(VARIANTS))
def variant(request, template):
    """(given parameters, parameter values, processed objects) for one parameter set."""
    given = {**REQUIRED_PARAMS, **VARIANTS[request.param]}
    values = ocp_template.parameter_values(template, given)
    return given, values, ocp_template.process(template, given)


@pytest.fixture(scope="session")
def objects(template) -> list[dict]:
    return ocp_template.process(template, REQUIRED_PARAMS)


def find(objects, kind, component=None):
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and (component is None or o["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]
    return found
