"""openshift/baton-template.yaml: valid objects that follow Baton's deployment rules."""

from __future__ import annotations

import pytest

import ocp_template
import support
from conftest import REQUIRED_PARAMS, find

# ----------------------------------------------------------------------------- the Template


def test_template_structure(template):
    assert support.check_template_structure(template) == []


def test_parameters_declared_and_used(template):
    declared = {p["name"] for p in template["parameters"]}
    used = ocp_template.referenced_parameters(template)
    assert used - declared == set(), "referenced but not declared"
    assert declared - used == set(), "declared but never used"


def test_parameters_without_default_are_required(template):
    # Empty on purpose: a generated Route host, no assets, API keys only, a generated secret.
    optional = {"ROUTE_HOST", "ASSETS_URL", "OIDC_ISSUER", "OIDC_AUDIENCE", "BOOTSTRAP_ADMIN_SECRET"}
    for param in template["parameters"]:
        if param.get("value", "") == "" and param["name"] not in optional:
            assert param.get("required") is True, param["name"]


@pytest.mark.parametrize("missing", sorted(REQUIRED_PARAMS))
def test_processing_fails_without_a_required_parameter(template, missing):
    given = {k: v for k, v in REQUIRED_PARAMS.items() if k != missing}
    with pytest.raises(ocp_template.TemplateError, match=missing):
        ocp_template.process(template, given)


def test_expected_objects(objects):
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert kinds == sorted(
        [
            ("PersistentVolumeClaim", "baton-data"),
            ("ConfigMap", "baton-config"),
            ("Secret", "baton-postgres"),
            ("Secret", "baton-rabbitmq"),
            ("Secret", "baton-auth"),
            ("Deployment", "baton-broker"),
            ("PodDisruptionBudget", "baton-broker"),
            ("Service", "baton"),
            ("Route", "baton"),
            ("Deployment", "baton-worker-example"),
        ]
    )


def test_no_leftover_parameter_references(variant):
    _, _, objects = variant
    for obj in objects:
        for text in ocp_template.strings_in(obj):
            assert "${" not in text, f"{obj['kind']}/{obj['metadata']['name']}: {text}"


# ----------------------------------------------------------------------------- schemas


def test_objects_validate(variant):
    _, _, objects = variant
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
    _, _, objects = variant
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
    _, _, objects = variant
    for name, spec in pod_specs(objects):
        for _, container in support.containers_of(spec):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), name
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), name


# ----------------------------------------------------------------------------- storage


def volumes_by_name(spec):
    return {v["name"]: v for v in spec.get("volumes", [])}


def test_shared_volume_is_rwx(variant):
    _, values, objects = variant
    (claim,) = find(objects, "PersistentVolumeClaim", "storage")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == values["STORAGE_CLASS"]
    assert claim["spec"]["resources"]["requests"]["storage"] == values["STORAGE_SIZE"]


def test_broker_mounts_shared_volume_read_write(variant):
    _, values, objects = variant
    (claim,) = find(objects, "PersistentVolumeClaim", "storage")
    (config,) = find(objects, "ConfigMap")
    (broker,) = find(objects, "Deployment", "broker")
    spec = broker["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    data = [m for m in container["volumeMounts"] if m["mountPath"] == config["data"]["BATON_STORAGE_DIR"]]
    assert len(data) == 1 and not data[0].get("readOnly", False)
    volume = volumes_by_name(spec)[data[0]["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert not volume["persistentVolumeClaim"].get("readOnly", False)
    assert config["data"]["BATON_STORAGE_DIR"] == "/data"


def worker_parts(objects):
    (worker,) = find(objects, "Deployment", "worker")
    spec = worker["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    return worker, spec, container, env


def test_worker_mounts_shared_volume_read_only(variant):
    _, _, objects = variant
    (claim,) = find(objects, "PersistentVolumeClaim", "storage")
    _, spec, container, env = worker_parts(objects)
    storage_dir = env["BATON_STORAGE_DIR"]["value"]
    assert storage_dir == "/data"
    volumes = volumes_by_name(spec)
    shared = [
        m
        for _, c in support.containers_of(spec)
        for m in c.get("volumeMounts", [])
        if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]
    ]
    assert [m["mountPath"] for m in shared] == [storage_dir]
    assert all(m.get("readOnly") is True for m in shared)
    data_volume = volumes[shared[0]["name"]]
    assert data_volume["persistentVolumeClaim"].get("readOnly") is True


def test_worker_assets_mounted_read_only_not_baked(variant):
    given, _, objects = variant
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
    given, values, objects = variant
    (config,) = find(objects, "ConfigMap")
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
    # The worker needs no database access.
    assert "BATON_DATABASE_URL" not in env and not container.get("envFrom")
    assert config["data"]["BATON_QUEUE_PREFIX"] == values["QUEUE_PREFIX"]


# ----------------------------------------------------------------------------- broker


def broker_parts(objects):
    (broker,) = find(objects, "Deployment", "broker")
    spec = broker["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return broker, spec, container


def test_broker_probes_and_port(variant):
    _, _, objects = variant
    (config,) = find(objects, "ConfigMap")
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
    given, values, objects = variant
    (config,) = find(objects, "ConfigMap")
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
    _, values, objects = variant
    (route,) = find(objects, "Route")
    assert route["spec"]["port"]["targetPort"] == "http"
    (service,) = [s for s in find(objects, "Service") if s["metadata"]["name"] == values["NAME"]]
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "metrics"}


def test_broker_replicas_and_rollout(variant):
    given, values, objects = variant
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
    _, values, objects = variant
    (config,) = find(objects, "ConfigMap")
    _, spec, container = broker_parts(objects)
    drain = support.parse_duration(config["data"]["BATON_SHUTDOWN_TIMEOUT"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    pause = float(pre_stop[1]) if pre_stop[0] == "sleep" else 0
    grace = spec["terminationGracePeriodSeconds"]
    assert isinstance(grace, int)
    assert grace >= drain + pause + 10, f"grace {grace}s vs drain {drain}s + pre-stop {pause}s"


def test_broker_environment(variant):
    _, values, objects = variant
    (config,) = find(objects, "ConfigMap")
    secrets = {s["metadata"]["name"]: s for s in find(objects, "Secret")}
    _, _, container = broker_parts(objects)
    sources = container["envFrom"]
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources
    secret_keys = set()
    for source in sources:
        if "secretRef" in source:
            secret_keys |= set(secrets[source["secretRef"]["name"]]["stringData"])
    assert secret_keys == {"BATON_DATABASE_URL", "BATON_AMQP_URL"}
    data = config["data"]
    assert data["BATON_RETENTION"] == values["RETENTION"]
    assert data["BATON_MAX_FILE_BYTES"] == values["MAX_UPLOAD_SIZE"]
    assert all(isinstance(v, str) for v in data.values())
    # Secrets hold the URLs, the ConfigMap nothing secret.
    assert not any("URL" in key for key in data)
    for secret in secrets.values():
        assert "data" not in secret and secret["stringData"]


def test_route(variant):
    _, values, objects = variant
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
