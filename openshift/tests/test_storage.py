"""Where uploads live: the shared volume (baton-template.yaml), object storage only
(baton-object-storage-template.yaml), the store's settings and credentials, the workers' cache."""

from __future__ import annotations

import copy

import pytest

import ocp_template
import support
from conftest import (
    OBJECT_REQUIRED_PARAMS,
    VARIANTS,
    broker_parts,
    find,
    load,
    volumes_by_name,
    worker_parts,
)

OBJECT_ACCESS_MODES = {"signed-url", "credentials"}
WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"


def config_data(objects) -> dict:
    (config,) = find(objects, "ConfigMap", "broker")
    return config["data"]


def all_mounts(spec):
    return [m for _, c in support.containers_of(spec) for m in c.get("volumeMounts", [])]


# ----------------------------------------------------------------------------- the volume


def test_shared_volume_is_rwx(variant):
    claims = find(variant.objects, "PersistentVolumeClaim", "storage")
    if variant.mode == "object":
        assert claims == []
        return
    (claim,) = claims
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == variant.values["STORAGE_CLASS"]
    assert claim["spec"]["resources"]["requests"]["storage"] == variant.values["STORAGE_SIZE"]


def test_broker_mounts_shared_volume_read_write(volume_variant):
    objects = volume_variant.objects
    (claim,) = find(objects, "PersistentVolumeClaim", "storage")
    data = config_data(objects)
    _, spec, container = broker_parts(objects)
    mounted = [m for m in container["volumeMounts"] if m["mountPath"] == data["BATON_STORAGE_DIR"]]
    assert len(mounted) == 1 and not mounted[0].get("readOnly", False)
    volume = volumes_by_name(spec)[mounted[0]["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert not volume["persistentVolumeClaim"].get("readOnly", False)
    assert data["BATON_STORAGE_DIR"] == "/data"


def test_worker_mounts_shared_volume_read_only(volume_variant):
    objects = volume_variant.objects
    (claim,) = find(objects, "PersistentVolumeClaim", "storage")
    _, spec, _, env = worker_parts(objects)
    storage_dir = env["BATON_STORAGE_DIR"]["value"]
    assert storage_dir == "/data"
    volumes = volumes_by_name(spec)
    shared = [
        m
        for m in all_mounts(spec)
        if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]
    ]
    assert [m["mountPath"] for m in shared] == [storage_dir]
    assert all(m.get("readOnly") is True for m in shared)
    assert volumes[shared[0]["name"]]["persistentVolumeClaim"].get("readOnly") is True


def test_object_storage_needs_no_shared_volume(object_variant):
    """Without the volume template nothing mounts /data or a claim other than the assets."""
    objects = object_variant.objects
    assert find(objects, "PersistentVolumeClaim") == []
    data = config_data(objects)
    assert "BATON_STORAGE_DIR" not in data and "BATON_STORAGE_REPLICA_URL" not in data
    assert data["BATON_STORAGE_URL"].startswith(("s3://", "az://"))
    for deployment in find(objects, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        claims = {v["name"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v}
        assert claims <= {"assets"}, deployment["metadata"]["name"]
        assert "/data" not in {m["mountPath"] for m in all_mounts(spec)}
    _, _, _, env = worker_parts(objects)
    assert "BATON_STORAGE_DIR" not in env


def test_storage_url_defaults_to_the_volume(objects):
    data = config_data(objects)
    assert data["BATON_STORAGE_URL"] == data["BATON_STORAGE_DIR"] == "/data"
    assert data["BATON_STORAGE_REPLICA_URL"] == ""
    assert data["BATON_CONTENT_REDIRECT"] == "off"


def test_broker_image_leaves_the_storage_directory_unset():
    """With the image setting BATON_STORAGE_DIR, a broker on object storage only would open
    (and try to create) a volume at /data on its read-only root file system."""
    stages = support.parse_containerfile(support.REPO / "broker/Containerfile")
    final = stages[-1]
    assert "BATON_STORAGE_DIR" not in {n for i in final.all("ENV") for n in support.env_names(i)}
    # Baton's default directory, ./data, is then the mount point /data.
    assert [i.args for i in final.all("WORKDIR")][-1:] == ["/"]


# ----------------------------------------------------------------------------- the two templates


def _strip_volume(objects: list[dict]) -> list[dict]:
    """The volume template's objects without what only the volume needs."""
    result = []
    for obj in copy.deepcopy(objects):
        if obj["kind"] == "PersistentVolumeClaim":
            continue
        if obj["kind"] == "ConfigMap" and "BATON_STORAGE_DIR" in obj["data"]:
            del obj["data"]["BATON_STORAGE_DIR"]
            del obj["data"]["BATON_STORAGE_REPLICA_URL"]
        if obj["kind"] == "Deployment":
            spec = obj["spec"]["template"]["spec"]
            spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "data"]
            for _, container in support.containers_of(spec):
                container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "data"]
                if "env" in container:
                    container["env"] = [e for e in container["env"] if e["name"] != "BATON_STORAGE_DIR"]
        result.append(obj)
    return result


def test_object_template_has_the_volume_templates_parameters_except_the_volumes_own():
    volume = load("volume")["parameters"]
    objects = load("object")["parameters"]
    volume_only = {"STORAGE_CLASS", "STORAGE_SIZE", "STORAGE_REPLICA_URL"}
    assert [p["name"] for p in objects] == [p["name"] for p in volume if p["name"] not in volume_only]
    by_name = {p["name"]: p for p in volume}
    for param in objects:
        name = param["name"]
        if name == "STORAGE_URL":
            assert param.get("required") is True and not param.get("value")
            continue
        if name == "STORAGE_SECRET":
            # Its description does not mention the volume.
            param = {k: v for k, v in param.items() if k != "description"}
            assert param == {k: v for k, v in by_name[name].items() if k != "description"}
            continue
        assert param == by_name[name], name
    assert load("object")["labels"] == load("volume")["labels"]


def _both(params: dict) -> tuple[list[dict], list[dict]]:
    """(volume template's objects without the volume, object template's objects) for the same
    parameters."""
    given = {**OBJECT_REQUIRED_PARAMS, **params, "BOOTSTRAP_ADMIN_SECRET": "fixed" * 8}
    from_volume = ocp_template.process(load("volume"), {**given, "STORAGE_CLASS": "cephfs"})
    return _strip_volume(from_volume), ocp_template.process(load("object"), given)


@pytest.mark.parametrize("name", sorted(VARIANTS["object"]))
def test_object_template_is_the_volume_template_without_the_volume(name):
    from_volume, from_object = _both(VARIANTS["object"][name])
    assert from_volume == from_object


def test_the_comparison_sees_a_difference():
    """The comparison above does fail when the templates drift apart."""
    from_volume, from_object = _both({})
    assert from_volume == from_object
    _, _, container = broker_parts(from_object)
    container["env"].append({"name": "BATON_SOMETHING", "value": "1"})
    assert from_volume != from_object


# ----------------------------------------------------------------------------- store settings


def test_store_settings_reach_the_broker(variant):
    values, objects = variant.values, variant.objects
    data = config_data(objects)
    assert data["BATON_STORAGE_URL"] == values["STORAGE_URL"]
    assert data["BATON_CONTENT_REDIRECT"] == values["CONTENT_REDIRECT"] in ("on", "off")
    if variant.mode == "volume":
        assert data["BATON_STORAGE_REPLICA_URL"] == values["STORAGE_REPLICA_URL"]
    (store,) = find(objects, "ConfigMap", "storage")
    assert store["metadata"]["name"] == f"{values['NAME']}-storage"
    assert store["data"] == {
        "AWS_ENDPOINT": values["AWS_ENDPOINT"],
        "AWS_REGION": values["AWS_REGION"],
        "AZURE_STORAGE_ACCOUNT_NAME": values["AZURE_STORAGE_ACCOUNT_NAME"],
    }
    assert set(store["data"]) <= support.STORE_ENV
    # AWS_REGION is never empty: an empty value would be taken as the region "".
    assert values["AWS_REGION"]
    _, _, container = broker_parts(objects)
    sources = container["envFrom"]
    store_ref = {"configMapRef": {"name": store["metadata"]["name"]}}
    secret_ref = {"secretRef": {"name": values["STORAGE_SECRET"], "optional": True}}
    # The operator's Secret comes after the ConfigMap, so its keys override the parameters.
    assert sources.index(store_ref) < sources.index(secret_ref)
    assert values["STORAGE_SECRET"] not in {s["metadata"]["name"] for s in find(objects, "Secret")}


def test_workers_read_the_store_with_their_own_credentials(variant):
    values, objects = variant.values, variant.objects
    _, _, container, env = worker_parts(objects)
    assert env["BATON_OBJECT_ACCESS"]["value"] == values["WORKER_OBJECT_ACCESS"]
    assert values["WORKER_OBJECT_ACCESS"] in OBJECT_ACCESS_MODES
    assert container["envFrom"] == [
        {"configMapRef": {"name": f"{values['NAME']}-storage"}},
        {"secretRef": {"name": values["WORKER_STORAGE_SECRET"], "optional": True}},
    ]
    # Never the broker's read-write credentials, unless the operator names them on purpose.
    if "WORKER_STORAGE_SECRET" not in variant.given:
        assert values["WORKER_STORAGE_SECRET"] != values["STORAGE_SECRET"]


def test_defaults_keep_broker_credentials_from_workers_and_downloads_in_the_broker(any_template):
    _, template = any_template
    defaults = {p["name"]: p.get("value") for p in template["parameters"]}
    assert defaults["WORKER_OBJECT_ACCESS"] == "signed-url"
    assert defaults["CONTENT_REDIRECT"] == "off"
    assert defaults["AZURE_WORKLOAD_IDENTITY"] == defaults["WORKER_AZURE_WORKLOAD_IDENTITY"] == "false"
    assert defaults["STORAGE_SECRET"] != defaults["WORKER_STORAGE_SECRET"]


# ----------------------------------------------------------------------------- worker cache


def cache_problems(values, objects) -> list[str]:
    """What is wrong with a worker's input cache: where it is, and whether it fits its volume."""
    problems = []
    _, spec, container, env = worker_parts(objects)
    cache_dir = env["BATON_CACHE_DIR"]["value"]
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == cache_dir]
    if len(mounts) != 1 or mounts[0].get("readOnly"):
        return [f"BATON_CACHE_DIR {cache_dir} is not one writable mount"]
    volume = volumes_by_name(spec)[mounts[0]["name"]]
    if set(volume) != {"name", "emptyDir"}:
        problems.append("the cache is not an emptyDir")
    size = support.parse_quantity(volume.get("emptyDir", {}).get("sizeLimit", "0"))
    raw = env["BATON_CACHE_MAX_BYTES"]["value"]
    if not raw.isdigit():
        problems.append(f"BATON_CACHE_MAX_BYTES {raw!r} is not a number of bytes")
        return problems
    # A file being fetched, up to the largest upload, may sit beside a full cache.
    needed = int(raw) + support.parse_bytes(values["MAX_UPLOAD_SIZE"])
    if size < needed:
        problems.append(f"sizeLimit {size} is below the cache bound plus the largest upload ({needed})")
    return problems


def test_worker_cache_fits_its_volume(variant):
    assert cache_problems(variant.values, variant.objects) == []
    _, _, _, env = worker_parts(variant.objects)
    assert env["BATON_CACHE_DIR"]["value"] == "/cache"
    assert env["BATON_CACHE_MAX_BYTES"]["value"] == variant.values["WORKER_CACHE_MAX_BYTES"]


def test_cache_check_catches_a_cache_larger_than_its_volume(any_template):
    mode, template = any_template
    required = OBJECT_REQUIRED_PARAMS if mode == "object" else {**OBJECT_REQUIRED_PARAMS, "STORAGE_CLASS": "x"}
    for wrong in ({"WORKER_CACHE_SIZE": "12Gi"}, {"WORKER_CACHE_MAX_BYTES": "10GiB"}, {"MAX_UPLOAD_SIZE": "50GiB"}):
        given = {**required, **wrong}
        problems = cache_problems(ocp_template.parameter_values(template, given), ocp_template.process(template, given))
        assert len(problems) == 1, (wrong, problems)


# ----------------------------------------------------------------------------- identities


def test_each_component_has_its_own_service_account(variant):
    values, objects = variant.values, variant.objects
    accounts = {a["metadata"]["name"]: a for a in find(objects, "ServiceAccount")}
    for component, identity, client_id in (
        ("broker", "AZURE_WORKLOAD_IDENTITY", "AZURE_CLIENT_ID"),
        ("worker", "WORKER_AZURE_WORKLOAD_IDENTITY", "WORKER_AZURE_CLIENT_ID"),
    ):
        (deployment,) = find(objects, "Deployment", component)
        pod = deployment["spec"]["template"]
        name = pod["spec"]["serviceAccountName"]
        assert name == f"{values['NAME']}-{component}"
        account = accounts[name]
        assert account["automountServiceAccountToken"] is False
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert account["metadata"]["annotations"][CLIENT_ID_ANNOTATION] == values[client_id]
        assert pod["metadata"]["labels"][WORKLOAD_IDENTITY_LABEL] == values[identity] in ("true", "false")
        # The label must not be in the selector: changing it would orphan the old pods.
        assert WORKLOAD_IDENTITY_LABEL not in deployment["spec"]["selector"]["matchLabels"]
    # The worker account is shared by every model: `oc apply -l baton-model=M` leaves it alone.
    assert "baton-model" not in accounts[f"{values['NAME']}-worker"]["metadata"]["labels"]
