"""openshift/trial/: throwaway services for a trial validate and follow the restricted SCC."""

import pytest

import ocp_template
import support

TRIAL_TEMPLATES = sorted(support.TRIAL_DIR.glob("*.yaml"))


def test_there_is_a_trial_rabbitmq():
    assert support.TRIAL_DIR / "rabbitmq.yaml" in TRIAL_TEMPLATES


@pytest.mark.parametrize("path", TRIAL_TEMPLATES, ids=lambda p: p.name)
def test_trial_template(path):
    template = ocp_template.load(path)
    assert support.check_template_structure(template) == []
    declared = {p["name"] for p in template["parameters"]}
    assert ocp_template.referenced_parameters(template) == declared
    required = {p["name"]: "x1" for p in template["parameters"] if p.get("required") and not p.get("value")}
    for obj in ocp_template.process(template, required):
        assert support.validate_kubernetes(obj) == [], obj["metadata"]["name"]
        if obj["kind"] != "Deployment":
            continue
        spec = obj["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for _, container in support.containers_of(spec):
            context = container["securityContext"]
            assert "runAsUser" not in context
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context["seccompProfile"]["type"] == "RuntimeDefault"
