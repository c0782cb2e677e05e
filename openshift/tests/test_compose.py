"""docker-compose.yml: services wired like the code expects."""

from __future__ import annotations

import re

import pytest
import yaml

import support


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(support.COMPOSE.read_text(encoding="utf-8"))


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def mounts(service: dict) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each short-syntax volume."""
    result = []
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), "use the short volume syntax"
        parts = entry.split(":")
        source, target = parts[0], parts[1]
        result.append((source, target, parts[2] if len(parts) > 2 else "rw"))
    return result


def test_services(compose):
    assert set(compose["services"]) == {"postgres", "rabbitmq", "baton", "worker"}
    assert "baton-data" in compose["volumes"]
    assert "version" not in compose


def test_images_are_short_names(compose):
    for name, service in compose["services"].items():
        if "image" in service:
            assert not support.image_has_registry_host(service["image"]), name
    assert compose["services"]["postgres"]["image"] == "postgres:15"
    assert compose["services"]["rabbitmq"]["image"] == "rabbitmq:3.13-management"


def test_builds_use_the_containerfiles(compose):
    for name, path in (("baton", "broker/Containerfile"), ("worker", "worker/Containerfile")):
        build = compose["services"][name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == path
        assert (support.REPO / build["context"] / build["dockerfile"]).is_file()


def test_broker_port(compose):
    port = support.listen_port()
    baton = compose["services"]["baton"]
    published = [str(p) for p in baton["ports"]]
    assert published == [f"{port}:{port}"]
    listen = environment(baton).get("BATON_LISTEN", f"0.0.0.0:{port}")
    assert int(listen.rsplit(":", 1)[1]) == port


def test_rabbitmq_ports_and_healthchecks(compose):
    services = compose["services"]
    assert {"5672:5672", "15672:15672"} <= {str(p) for p in services["rabbitmq"]["ports"]}
    for name in ("postgres", "rabbitmq"):
        assert services[name]["healthcheck"]["test"], name
    depends = services["baton"]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["rabbitmq"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service,component", [("baton", "broker"), ("worker", "worker")])
def test_environment_exists_in_code(compose, service, component):
    names = set(environment(compose["services"][service]))
    unknown = {n for n in names if n.startswith("BATON_")} - support.known_env(component)
    assert unknown == set(), f"{service} sets variables the {component} does not read"
    assert names == {n for n in names if n.startswith("BATON_")}, "only BATON_ variables"


def test_shared_volume(compose):
    services = compose["services"]
    baton_env, worker_env = environment(services["baton"]), environment(services["worker"])
    baton_data = [m for m in mounts(services["baton"]) if m[0] == "baton-data"]
    worker_data = [m for m in mounts(services["worker"]) if m[0] == "baton-data"]
    assert baton_data == [("baton-data", baton_env["BATON_STORAGE_DIR"], "rw")]
    assert worker_data == [("baton-data", worker_env["BATON_STORAGE_DIR"], "ro")]
    assert baton_env["BATON_STORAGE_DIR"] == worker_env["BATON_STORAGE_DIR"] == "/data"


def test_connection_urls_point_at_services(compose):
    services = compose["services"]
    baton_env, worker_env = environment(services["baton"]), environment(services["worker"])
    assert "@postgres:5432/" in baton_env["BATON_DATABASE_URL"]
    postgres = environment(services["postgres"])
    assert baton_env["BATON_DATABASE_URL"].endswith("/" + postgres["POSTGRES_DB"])
    assert "@rabbitmq:5672/" in baton_env["BATON_AMQP_URL"]
    assert baton_env["BATON_AMQP_URL"] == worker_env["BATON_AMQP_URL"]
    assert worker_env["BATON_WORKER_MODEL"] == "example"


# A commented `KEY: value` line of an environment, as the storage examples are written.
COMMENTED_SETTING = re.compile(r"^(\s*)# ((?:BATON|AWS|AZURE)_[A-Z0-9_]+: .*)$", re.M)


def test_commented_storage_examples_name_variables_that_are_read():
    text = support.COMPOSE.read_text(encoding="utf-8")
    uncommented = COMMENTED_SETTING.sub(r"\1\2", text)
    # Uncommented all at once, the alternatives repeat keys; PyYAML keeps the last one, which is
    # enough to see every name.
    services = yaml.safe_load(uncommented)["services"]
    examples = {
        service: set(environment(services[service])) - set(environment(yaml.safe_load(text)["services"][service]))
        for service in ("baton", "worker")
    }
    assert {"BATON_STORAGE_URL", "BATON_STORAGE_REPLICA_URL", "BATON_CONTENT_REDIRECT"} <= examples["baton"]
    assert {"AWS_ENDPOINT", "AWS_ACCESS_KEY_ID", "AZURE_STORAGE_ACCOUNT_NAME"} <= examples["baton"]
    assert {"BATON_CACHE_DIR", "BATON_CACHE_MAX_BYTES", "BATON_OBJECT_ACCESS"} <= examples["worker"]
    for service, component in (("baton", "broker"), ("worker", "worker")):
        names = examples[service]
        assert {n for n in names if n.startswith("BATON_")} <= support.known_env(component), service
        assert {n for n in names if not n.startswith("BATON_")} <= support.STORE_ENV, service
    # Keys come from the shell or .env, never from the file.
    for name, value in environment(services["baton"]).items():
        if name.endswith(("_KEY", "_KEY_ID")):
            assert value == "${" + name + "}", name
