"""openshift/baton-template.yaml and baton-object-storage-template.yaml: valid objects that follow
Baton's deployment rules. Storage (volume, object store, cache) is in test_storage.py."""

from __future__ import annotations

import pytest

import ocp_template
import support
import conftest
from conftest import REQUIRED, REQUIRED_PARAMS, broker_parts, find, volumes_by_name, worker_parts

# ----------------------------------------------------------------------------- the Template


def test_template_structure(any_template):
    _, template = any_template
    assert support.check_template_structure(template) == []


def test_parameters_declared_and_used(any_template):
    _, template = any_template
    declared = {p["name"] for p in template["parameters"]}
    used = ocp_template.referenced_parameters(template)
    assert used - declared == set(), "referenced but not declared"
    assert declared - used == set(), "declared but never used"


def test_parameters_without_default_are_required(any_template):
    _, template = any_template
    # Empty on purpose: a generated Route host, no assets, API keys only, a generated secret,
    # the volume and no replica, store settings of the backends not in use.
    optional = {
        "ROUTE_HOST", "ASSETS_URL", "OIDC_ISSUER", "OIDC_AUDIENCE", "BOOTSTRAP_ADMIN_SECRET",
        "STORAGE_REPLICA_URL", "AWS_ENDPOINT", "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_CLIENT_ID", "WORKER_AZURE_CLIENT_ID",
    }
    for param in template["parameters"]:
        if param.get("value", "") == "" and param["name"] not in optional:
            assert param.get("required") is True, param["name"]


@pytest.mark.parametrize(
    "mode,missing", [(mode, name) for mode in sorted(REQUIRED) for name in sorted(REQUIRED[mode])]
)
def test_processing_fails_without_a_required_parameter(mode, missing):
    given = {k: v for k, v in REQUIRED[mode].items() if k != missing}
    with pytest.raises(ocp_template.TemplateError, match=missing):
        ocp_template.process(conftest.load(mode), given)


COMMON_OBJECTS = [
    ("ConfigMap", "baton-config"),
    ("ConfigMap", "baton-storage"),
    ("ServiceAccount", "baton-broker"),
    ("ServiceAccount", "baton-worker"),
    ("Secret", "baton-postgres"),
    ("Secret", "baton-rabbitmq"),
    ("Secret", "baton-auth"),
    ("Deployment", "baton-broker"),
    ("PodDisruptionBudget", "baton-broker"),
    ("Service", "baton"),
    ("Route", "baton"),
    ("Deployment", "baton-worker-example"),
]


def test_expected_objects(objects, object_objects):
    def kinds(processed):
        return sorted((o["kind"], o["metadata"]["name"]) for o in processed)

    assert kinds(objects) == sorted(COMMON_OBJECTS + [("PersistentVolumeClaim", "baton-data")])
    assert kinds(object_objects) == sorted(COMMON_OBJECTS)


def test_no_leftover_parameter_references(variant):
    for obj in variant.objects:
        for text in ocp_template.strings_in(obj):
            assert "${" not in text, f"{obj['kind']}/{obj['metadata']['name']}: {text}"


# ----------------------------------------------------------------------------- schemas


def test_objects_validate(variant):
    objects = variant.objects
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"].startswith("route.openshift.io/"):
            assert support.check_route(obj) == [], name
        else:
            assert support.validate_kubernetes(obj) == [], name
            assert support.DNS_SUBDOMAIN.fullmatch(obj["metadata"]["name"]), name


def test_validation_catches_mistakes(objects):
    """The validators do reject broken objects (guards against a validator that accepts all)."""
    (broker,) = find(objects, "Deployment", "broker")
    broken = ocp_template.substitute(broker, {})
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/x"
    assert support.validate_kubernetes(broken)
    broken = ocp_template.substitute(broker, {})
    broken["spec"]["replicas"] = "2"
    assert support.validate_kubernetes(broken)
    (route,) = find(objects, "Route")
    bad_route = ocp_template.substitute(route, {})
    del bad_route["spec"]["to"]
    bad_route["spec"]["tls"]["termination"] = "edgy"
    problems = support.check_route(bad_route)
    assert any("spec.to" in p for p in problems) and any("termination" in p for p in problems)


# ----------------------------------------------------------------------------- security


def pod_specs(objects):
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def test_restricted_scc(variant):
    """Every container and init container runs under OpenShift's restricted SCC."""
    objects = variant.objects
    specs = list(pod_specs(objects))
    assert len(specs) == 2
    for name, spec in specs:
        pod = spec.get("securityContext", {})
        assert "runAsUser" not in pod and "runAsGroup" not in pod, name
        assert "fsGroup" not in pod, name
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, name
        containers = list(support.containers_of(spec))
        assert containers
        for kind, container in containers:
            where = f"{name}/{kind}/{container['name']}"
            context = container.get("securityContext", {})
            assert "runAsUser" not in context, where
            assert context.get("runAsNonRoot") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("capabilities", {}).get("add"), where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("privileged") in (None, False), where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            # A read-only root needs a writable /tmp.
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, where
            for port in container.get("ports", []):
                assert "hostPort" not in port, where


def test_resources_set(variant):
    objects = variant.objects
    for name, spec in pod_specs(objects):
        for _, container in support.containers_of(spec):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), name
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), name


# ----------------------------------------------------------------------------- worker


def test_worker_assets_mounted_read_only_not_baked(variant):
    given, objects = variant.given, variant.objects
    _, spec, container, env = worker_parts(objects)
    assert env["BATON_ASSETS_DIR"]["value"] == "/app/assets"
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == "/app/assets"]
    assert len(mounts) == 1 and mounts[0].get("readOnly") is True
    volume = volumes_by_name(spec)[mounts[0]["name"]]
    sources = set(volume) - {"name"}
    if "ASSETS_VOLUME" in given:
        assert sources == {"persistentVolumeClaim"}
        assert volume["persistentVolumeClaim"]["readOnly"] is True
        assert volume["persistentVolumeClaim"]["claimName"] == "resnet-weights"
    else:
        assert sources == {"emptyDir"}
    # The init container fills the same volume in fetch mode.
    (init,) = spec["initContainers"]
    assert [m["mountPath"] for m in init["volumeMounts"] if m["name"] == mounts[0]["name"]] == ["/app/assets"]
    init_env = {e["name"]: e.get("value") for e in init["env"]}
    assert init_env["ASSETS_URL"] == given.get("ASSETS_URL", "")
    assert init["image"] == container["image"]


def test_worker_environment(variant):
    given, values, objects = variant.given, variant.values, variant.objects
    (config,) = find(objects, "ConfigMap", "broker")
    (amqp_secret,) = [s for s in find(objects, "Secret") if "BATON_AMQP_URL" in s["stringData"]]
    worker, spec, container, env = worker_parts(objects)
    assert env["BATON_WORKER_MODEL"]["value"] == values["MODEL"]
    assert worker["metadata"]["name"] == f"{values['NAME']}-worker-{values['MODEL']}"
    assert worker["metadata"]["labels"]["baton-model"] == values["MODEL"]
    ref = env["BATON_AMQP_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": amqp_secret["metadata"]["name"], "key": "BATON_AMQP_URL"}
    for name in ("BATON_QUEUE_PREFIX", "BATON_LOG"):
        ref = env[name]["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == config["metadata"]["name"] and ref["key"] in config["data"]
    # The worker needs no database access, nor anything else of the broker's: it reads only the
    # store's location and its own credentials (test_storage.py).
    assert "BATON_DATABASE_URL" not in env
    sources = {next(iter(source.values()))["name"] for source in container.get("envFrom", [])}
    assert sources == {f"{values['NAME']}-storage", values["WORKER_STORAGE_SECRET"]}
    assert config["data"]["BATON_QUEUE_PREFIX"] == values["QUEUE_PREFIX"]


# ----------------------------------------------------------------------------- broker


def test_broker_probes_and_port(variant):
    objects = variant.objects
    (config,) = find(objects, "ConfigMap", "broker")
    port = support.listen_port()
    assert int(config["data"]["BATON_LISTEN"].rsplit(":", 1)[1]) == port == 8080
    _, _, container = broker_parts(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    metrics = int(config["data"]["BATON_METRICS_LISTEN"].rsplit(":", 1)[1])
    assert ports == {"http": port, "metrics": metrics}
    assert metrics != port

    def probe_port(probe):
        value = probe["httpGet"]["port"]
        return ports[value] if isinstance(value, str) else value

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert probe_port(container[probe]) == port, probe
    assert container.get("args", []) == ["serve"]


def test_access_is_on_with_a_generated_bootstrap_admin_key(variant):
    given, values, objects = variant.given, variant.values, variant.objects
    (config,) = find(objects, "ConfigMap", "broker")
    assert config["data"]["BATON_AUTH"] == "on"
    secrets = {s["metadata"]["name"]: s for s in find(objects, "Secret")}
    auth = secrets[f"{values['NAME']}-auth"]["stringData"]
    secret = auth["BATON_BOOTSTRAP_ADMIN_SECRET"]
    assert len(secret) >= 32 and secret.isalnum()
    assert auth["admin-token"] == f"baton_bootstrap_{secret}"
    _, _, container = broker_parts(objects)
    (env,) = [e for e in container["env"] if e["name"] == "BATON_BOOTSTRAP_ADMIN_SECRET"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": f"{values['NAME']}-auth", "key": "BATON_BOOTSTRAP_ADMIN_SECRET"}


def test_the_route_never_exposes_the_metrics_port(variant):
    values, objects = variant.values, variant.objects
    (route,) = find(objects, "Route")
    assert route["spec"]["port"]["targetPort"] == "http"
    (service,) = [s for s in find(objects, "Service") if s["metadata"]["name"] == values["NAME"]]
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "metrics"}


def test_broker_replicas_and_rollout(variant):
    given, values, objects = variant.given, variant.values, variant.objects
    broker, spec, _ = broker_parts(objects)
    replicas = broker["spec"]["replicas"]
    assert isinstance(replicas, int) and replicas == int(values["BROKER_REPLICAS"])
    if "BROKER_REPLICAS" not in given:
        assert replicas == 2
    assert broker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # Selectors match the pod labels.
    labels = broker["spec"]["template"]["metadata"]["labels"]
    assert broker["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (service,) = find(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (budget,) = find(objects, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == broker["spec"]["selector"]["matchLabels"]


def test_grace_period_covers_upload_drain(variant):
    values, objects = variant.values, variant.objects
    (config,) = find(objects, "ConfigMap", "broker")
    _, spec, container = broker_parts(objects)
    drain = support.parse_duration(config["data"]["BATON_SHUTDOWN_TIMEOUT"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    pause = float(pre_stop[1]) if pre_stop[0] == "sleep" else 0
    grace = spec["terminationGracePeriodSeconds"]
    assert isinstance(grace, int)
    assert grace >= drain + pause + 10, f"grace {grace}s vs drain {drain}s + pre-stop {pause}s"


def test_broker_environment(variant):
    values, objects = variant.values, variant.objects
    (config,) = find(objects, "ConfigMap", "broker")
    secrets = {s["metadata"]["name"]: s for s in find(objects, "Secret")}
    _, _, container = broker_parts(objects)
    sources = container["envFrom"]
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources
    secret_keys = set()
    for source in sources:
        # The object store's credentials are a Secret the operator creates (test_storage.py).
        if "secretRef" in source and source["secretRef"]["name"] != values["STORAGE_SECRET"]:
            secret_keys |= set(secrets[source["secretRef"]["name"]]["stringData"])
    assert secret_keys == {"BATON_DATABASE_URL", "BATON_AMQP_URL"}
    data = config["data"]
    assert data["BATON_RETENTION"] == values["RETENTION"]
    assert data["BATON_MAX_FILE_BYTES"] == values["MAX_UPLOAD_SIZE"]
    assert all(isinstance(v, str) for v in data.values())
    # Secrets hold the URLs with passwords, the ConfigMap nothing secret: its only URLs name a
    # bucket or container, whose credentials come from elsewhere.
    assert {key for key in data if "URL" in key} <= {"BATON_STORAGE_URL", "BATON_STORAGE_REPLICA_URL"}
    for secret in secrets.values():
        assert "data" not in secret and secret["stringData"]


def test_oidc_is_off_by_default_and_configured_by_parameters(template):
    (config,) = find(ocp_template.process(template, REQUIRED_PARAMS), "ConfigMap", "broker")
    assert {k: v for k, v in config["data"].items() if k.startswith("BATON_OIDC_")} == {
        "BATON_OIDC_ISSUER": "", "BATON_OIDC_AUDIENCE": "", "BATON_OIDC_OWNER_CLAIM": "azp"}
    issuer = "https://login.microsoftonline.com/0c9a8e7f-1b2c-4d3e-8f4a-5b6c7d8e9f00/v2.0"
    given = {**REQUIRED_PARAMS, "OIDC_ISSUER": issuer, "OIDC_AUDIENCE": "6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f"}
    (config,) = find(ocp_template.process(template, given), "ConfigMap", "broker")
    assert (config["data"]["BATON_OIDC_ISSUER"], config["data"]["BATON_OIDC_AUDIENCE"]) == (
        given["OIDC_ISSUER"], given["OIDC_AUDIENCE"])


def test_route(variant):
    values, objects = variant.values, variant.objects
    (route,) = find(objects, "Route")
    (service,) = find(objects, "Service")
    assert route["spec"]["to"]["name"] == service["metadata"]["name"]
    assert route["spec"]["port"]["targetPort"] in [p["name"] for p in service["spec"]["ports"]]
    assert route["spec"]["tls"]["termination"] == "edge"
    assert route["spec"]["tls"]["insecureEdgeTerminationPolicy"] == "Redirect"
    annotations = route["metadata"]["annotations"]
    timeout = annotations["haproxy.router.openshift.io/timeout"]
    assert support.parse_duration(timeout) >= 600
    assert route["spec"]["host"] == values["ROUTE_HOST"]


def test_service_targets_broker_port(objects):
    (service,) = find(objects, "Service")
    _, _, container = broker_parts(objects)
    names = {p["name"] for p in container["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in names, port
        assert port["port"] == container_ports[port["targetPort"]], port
    (http,) = [p for p in service["spec"]["ports"] if p["name"] == "http"]
    assert http["port"] == support.listen_port()


def test_images_have_no_registry_host(template):
    for param in template["parameters"]:
        if param["name"].endswith("_IMAGE"):
            assert not support.image_has_registry_host(param.get("value", "")), param["name"]


def test_model_default_is_a_valid_model_name(template):
    import re

    (model,) = [p for p in template["parameters"] if p["name"] == "MODEL"]
    # Valid for Baton ([a-z0-9][a-z0-9._-]{0,63}) and inside object names.
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", model["value"])
