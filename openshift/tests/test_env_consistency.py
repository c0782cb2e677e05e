"""Every BATON_ variable the template sets is one the code reads (or is planned)."""

from __future__ import annotations

import warnings

import pytest

import support
from conftest import find


def template_env(objects) -> dict[str, set[str]]:
    """BATON_ variables each component gets from the processed template."""
    result = {"broker": set(), "worker": set()}
    configmaps = {o["metadata"]["name"]: o for o in find(objects, "ConfigMap")}
    secrets = {o["metadata"]["name"]: o for o in find(objects, "Secret")}
    for deployment in find(objects, "Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        for _, container in support.containers_of(deployment["spec"]["template"]["spec"]):
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    names |= set(configmaps[source["configMapRef"]["name"]]["data"])
                if "secretRef" in source:
                    names |= set(secrets[source["secretRef"]["name"]]["stringData"])
            result[component] |= {n for n in names if n.startswith("BATON_")}
    return result


def test_source_is_readable():
    broker = support.broker_env_from_source()
    # The broker's core settings, as a sanity check of the source scan.
    assert {"BATON_DATABASE_URL", "BATON_AMQP_URL", "BATON_STORAGE_DIR", "BATON_LISTEN"} <= broker


@pytest.mark.parametrize("component", ["broker", "worker"])
def test_template_env_exists_in_code(variant, component):
    _, _, objects = variant
    names = template_env(objects)[component]
    assert names, component
    unknown = names - support.known_env(component)
    assert unknown == set(), (
        f"the template sets {sorted(unknown)} for the {component}, which neither its source "
        f"nor openshift/tests/planned_env.txt knows"
    )


def test_broker_gets_its_essential_settings(objects):
    names = template_env(objects)["broker"]
    assert {
        "BATON_DATABASE_URL",
        "BATON_AMQP_URL",
        "BATON_STORAGE_DIR",
        "BATON_LISTEN",
        "BATON_QUEUE_PREFIX",
        "BATON_SHUTDOWN_TIMEOUT",
        "BATON_MAX_FILE_BYTES",
        "BATON_RETENTION",
    } <= names


def test_worker_gets_its_essential_settings(objects):
    assert {
        "BATON_AMQP_URL",
        "BATON_STORAGE_DIR",
        "BATON_WORKER_MODEL",
        "BATON_QUEUE_PREFIX",
        "BATON_ASSETS_DIR",
    } <= template_env(objects)["worker"]


def test_planned_list_is_current():
    planned = support.planned_env()
    assert {"BATON_RETENTION", "BATON_CLEANUP_INTERVAL"} <= planned["broker"] | support.broker_env_from_source()
    landed = {
        "broker": planned["broker"] & support.broker_env_from_source(),
        "worker": planned["worker"] & support.worker_env_from_source(),
    }
    for component, names in landed.items():
        if names:
            warnings.warn(
                f"planned_env.txt [{component}] lists {sorted(names)}, which the code now reads: "
                "delete those lines",
                stacklevel=1,
            )
