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
                    name = source["secretRef"]["name"]
                    if name in secrets:
                        names |= set(secrets[name]["stringData"])
                    else:
                        # The object store's credentials: a Secret the operator creates.
                        assert source["secretRef"].get("optional") is True, name
            result[component] |= {n for n in names if n.startswith("BATON_")}
    return result


def test_source_is_readable():
    broker = support.broker_env_from_source()
    # The broker's core settings, as a sanity check of the source scan.
    assert {"BATON_DATABASE_URL", "BATON_AMQP_URL", "BATON_STORAGE_DIR", "BATON_LISTEN"} <= broker


@pytest.mark.parametrize("component", ["broker", "worker"])
def test_template_env_exists_in_code(variant, component):
    names = template_env(variant.objects)[component]
    assert names, component
    unknown = names - support.known_env(component)
    assert unknown == set(), (
        f"the template sets {sorted(unknown)} for the {component}, which neither its source "
        f"nor openshift/tests/planned_env.txt knows"
    )


BROKER_ESSENTIALS = {
    "BATON_DATABASE_URL",
    "BATON_AMQP_URL",
    "BATON_STORAGE_URL",
    "BATON_CONTENT_REDIRECT",
    "BATON_LISTEN",
    "BATON_QUEUE_PREFIX",
    "BATON_SHUTDOWN_TIMEOUT",
    "BATON_MAX_FILE_BYTES",
    "BATON_RETENTION",
}
WORKER_ESSENTIALS = {
    "BATON_AMQP_URL",
    "BATON_WORKER_MODEL",
    "BATON_QUEUE_PREFIX",
    "BATON_ASSETS_DIR",
    "BATON_CACHE_DIR",
    "BATON_CACHE_MAX_BYTES",
    "BATON_OBJECT_ACCESS",
}
# Only with the shared volume.
VOLUME_ESSENTIALS = {
    "broker": {"BATON_STORAGE_DIR", "BATON_STORAGE_REPLICA_URL"},
    "worker": {"BATON_STORAGE_DIR"},
}


def test_broker_gets_its_essential_settings(objects, object_objects):
    assert BROKER_ESSENTIALS | VOLUME_ESSENTIALS["broker"] <= template_env(objects)["broker"]
    names = template_env(object_objects)["broker"]
    assert BROKER_ESSENTIALS <= names and not VOLUME_ESSENTIALS["broker"] & names


def test_worker_gets_its_essential_settings(objects, object_objects):
    assert WORKER_ESSENTIALS | VOLUME_ESSENTIALS["worker"] <= template_env(objects)["worker"]
    names = template_env(object_objects)["worker"]
    assert WORKER_ESSENTIALS <= names and not VOLUME_ESSENTIALS["worker"] & names


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
