"""The `oc process` stand-in behaves like oc on the cases the templates use."""

import pytest

from ocp_template import TemplateError, parameter_values, process, referenced_parameters

TEMPLATE = {
    "apiVersion": "template.openshift.io/v1",
    "kind": "Template",
    "metadata": {"name": "t"},
    "labels": {"instance": "${NAME}"},
    "parameters": [
        {"name": "NAME", "value": "demo", "required": True},
        {"name": "REPLICAS", "value": "2"},
        {"name": "VOLUME", "value": '{"name":"v","emptyDir":{}}'},
        {"name": "WORD", "value": "yes"},
        {"name": "HOST", "value": ""},
        {"name": "URL", "required": True},
    ],
    "objects": [
        {
            "kind": "Thing",
            "metadata": {"name": "${NAME}-a-${NAME}"},
            "spec": {
                "replicas": "${{REPLICAS}}",
                "volumes": ["${{VOLUME}}"],
                "word": "${{WORD}}",
                "host": "${HOST}",
                "url": "${URL}",
                "untouched": "${NOT_A_PARAM} and $NAME",
                "${NAME}-key": "value",
                "inside": "x${{REPLICAS}}",
            },
        }
    ],
}


def test_string_and_non_string_substitution():
    (obj,) = process(TEMPLATE, {"URL": "amqp://h/%2f"})
    spec = obj["spec"]
    assert obj["metadata"]["name"] == "demo-a-demo"
    assert spec["replicas"] == 2 and isinstance(spec["replicas"], int)
    assert spec["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert spec["word"] == "yes"  # not JSON: stays a string, as in oc
    assert spec["host"] == ""
    assert spec["url"] == "amqp://h/%2f"
    assert spec["untouched"] == "${NOT_A_PARAM} and $NAME"
    assert spec["demo-key"] == "value"
    # ${{P}} only counts as a whole value; inside a string ${...} matching does not apply to it.
    assert spec["inside"] == "x${{REPLICAS}}"
    assert obj["metadata"]["labels"] == {"instance": "demo"}


def test_given_values_override_defaults():
    (obj,) = process(TEMPLATE, {"URL": "u", "NAME": "other", "REPLICAS": "5"})
    assert obj["metadata"]["name"] == "other-a-other"
    assert obj["spec"]["replicas"] == 5


def test_required_parameter_without_value_fails():
    with pytest.raises(TemplateError, match="URL"):
        process(TEMPLATE, {})
    with pytest.raises(TemplateError, match="NAME"):
        process(TEMPLATE, {"URL": "u", "NAME": ""})


def test_unknown_parameter_fails():
    with pytest.raises(TemplateError, match="NOPE"):
        parameter_values(TEMPLATE, {"URL": "u", "NOPE": "1"})


def test_generate_makes_a_value_of_the_expression_or_refuses_one_it_cannot():
    template = {"parameters": [{"name": "P", "generate": "expression", "from": "[a-z0-9]{8}"}], "objects": []}
    first = parameter_values(template)["P"]
    assert len(first) == 8 and all(c.isdigit() or c.islower() for c in first)
    assert parameter_values(template) != parameter_values(template) or len(set(first)) == 1
    assert parameter_values(template, {"P": "given"})["P"] == "given"
    template["parameters"][0]["from"] = "\\w{8}"
    with pytest.raises(TemplateError, match="from"):
        parameter_values(template)


def test_referenced_parameters():
    assert referenced_parameters(TEMPLATE) == {"NAME", "REPLICAS", "VOLUME", "WORD", "HOST", "URL", "NOT_A_PARAM"}
