"""openshift/keda-scaledobject.yaml: KEDA objects that match the worker of the main template."""

import pytest

import ocp_template
import support
from conftest import REQUIRED, find, load


def test_template_structure(keda_template):
    assert support.check_template_structure(keda_template) == []


def test_parameters_declared_and_used(keda_template):
    declared = {p["name"] for p in keda_template["parameters"]}
    assert ocp_template.referenced_parameters(keda_template) == declared


@pytest.mark.parametrize("mode", sorted(REQUIRED))
@pytest.mark.parametrize("model", ["example", "resnet-50"])
def test_scaled_object_targets_the_worker(keda_template, mode, model):
    main = ocp_template.process(load(mode), {**REQUIRED[mode], "MODEL": model})
    keda = ocp_template.process(keda_template, {"MODEL": model})
    for obj in keda:
        assert support.check_keda(obj) == [], obj["kind"]
    (scaled,) = [o for o in keda if o["kind"] == "ScaledObject"]
    (auth,) = [o for o in keda if o["kind"] == "TriggerAuthentication"]
    (worker,) = find(main, "Deployment", "worker")
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        worker["metadata"]["name"],
    )
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == f"baton.jobs.{model}"
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    # The AMQP URL comes from the main template's Secret.
    secrets = {s["metadata"]["name"]: s for s in find(main, "Secret")}
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in secrets[ref["name"]]["stringData"]
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"host"}
    assert 0 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_queue_prefix_follows_main_template(keda_template):
    keda = ocp_template.process(keda_template, {"QUEUE_PREFIX": "prod.", "MODEL": "m"})
    (scaled,) = [o for o in keda if o["kind"] == "ScaledObject"]
    assert scaled["spec"]["triggers"][0]["metadata"]["queueName"] == "prod.jobs.m"


def test_keda_checks_catch_mistakes(keda_template):
    (scaled,) = [o for o in ocp_template.process(keda_template) if o["kind"] == "ScaledObject"]
    del scaled["spec"]["scaleTargetRef"]["name"]
    scaled["spec"]["triggers"][0]["metadata"]["value"] = 4
    scaled["spec"]["minReplicaCount"] = 9
    problems = support.check_keda(scaled)
    assert len(problems) == 3, problems


def test_defaults_match_main_template(template, keda_template):
    main = {p["name"]: p.get("value") for p in template["parameters"]}
    keda = {p["name"]: p.get("value") for p in keda_template["parameters"]}
    for name in ("NAME", "MODEL", "QUEUE_PREFIX"):
        assert keda[name] == main[name], name
