"""Helpers of the deployment checks: the repository's facts, parsers and validators."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import kubernetes_validate

REPO = Path(__file__).resolve().parents[2]
OPENSHIFT = REPO / "openshift"
TEMPLATE = OPENSHIFT / "baton-template.yaml"
OBJECT_TEMPLATE = OPENSHIFT / "baton-object-storage-template.yaml"
KEDA_TEMPLATE = OPENSHIFT / "keda-scaledobject.yaml"
TRIAL_DIR = OPENSHIFT / "trial"
COMPOSE = REPO / "docker-compose.yml"
PLANNED_ENV = Path(__file__).resolve().parent / "planned_env.txt"

# Kubernetes version the manifests must validate against (OpenShift 4.17 ships 1.30).
KUBERNETES_VERSIONS = ("1.30.0", "1.33.0")

# --------------------------------------------------------------------------- source facts

ENV_ATTRIBUTE = re.compile(r'env\s*=\s*"(BATON_[A-Z0-9_]+)"')
ENV_LITERAL = re.compile(r'"(BATON_[A-Z0-9_]+)"')


def rust_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.rs")) if directory.is_dir() else []


def broker_env_from_source() -> set[str]:
    """Variables the broker reads: its clap `env = "BATON_..."` attributes."""
    names: set[str] = set()
    for path in rust_files(REPO / "broker" / "src"):
        names.update(ENV_ATTRIBUTE.findall(path.read_text(encoding="utf-8")))
    return names


def worker_env_from_source() -> set[str]:
    """Variables the worker reads: `env = "BATON_..."` attributes or "BATON_..." literals."""
    names: set[str] = set()
    for path in rust_files(REPO / "worker" / "src"):
        text = path.read_text(encoding="utf-8")
        names.update(ENV_ATTRIBUTE.findall(text))
        names.update(ENV_LITERAL.findall(text))
    return names


def planned_env() -> dict[str, set[str]]:
    """The allowlist of variables set by the deployment files before the code reads them."""
    sections: dict[str, set[str]] = {"broker": set(), "worker": set()}
    current = None
    for number, raw in enumerate(PLANNED_ENV.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = header.group(1)
            if current not in sections:
                raise ValueError(f"{PLANNED_ENV.name}:{number}: unknown section [{current}]")
            continue
        if current is None:
            raise ValueError(f"{PLANNED_ENV.name}:{number}: {line} is outside [broker]/[worker]")
        if not re.fullmatch(r"BATON_[A-Z0-9_]+", line):
            raise ValueError(f"{PLANNED_ENV.name}:{number}: {line!r} is not a BATON_ variable")
        sections[current].add(line)
    return sections


def known_env(component: str) -> set[str]:
    source = broker_env_from_source() if component == "broker" else worker_env_from_source()
    return source | planned_env()[component]


def source_default(variable: str) -> str | None:
    """The `default_value` next to `env = "<variable>"` in broker/src, if any."""
    pattern = re.compile(
        r'env\s*=\s*"' + re.escape(variable) + r'"[^)]*?default_value\s*=\s*"([^"]*)"', re.S
    )
    for path in rust_files(REPO / "broker" / "src"):
        found = pattern.search(path.read_text(encoding="utf-8"))
        if found:
            return found.group(1)
    return None


def listen_port() -> int:
    """The broker's port: from the default of BATON_LISTEN in the source (8080 today)."""
    default = source_default("BATON_LISTEN") or "0.0.0.0:8080"
    return int(default.rsplit(":", 1)[1])


def cargo_package(crate_dir: str) -> tuple[str, set[str]]:
    """A crate's package name and the names of its `[[bin]]` targets."""
    text = (REPO / crate_dir / "Cargo.toml").read_text(encoding="utf-8")
    package = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', text, re.M | re.S)
    bins = set()
    for block in re.split(r"^\[\[bin\]\]\s*$", text, flags=re.M)[1:]:
        block = re.split(r"^\[", block, maxsplit=1, flags=re.M)[0]
        name = re.search(r'^name\s*=\s*"([^"]+)"', block, re.M)
        if name:
            bins.add(name.group(1))
    return (package.group(1) if package else ""), bins


# Standard variables of the object store clients that the deployment files set (ConfigMap
# NAME-storage, Compose examples): names object_store 0.14's `from_env` builders accept
# (aws/builder.rs, azure/builder.rs) and that design-12 lists.
STORE_ENV = {
    "AWS_ENDPOINT", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ALLOW_HTTP",
    "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_USE_EMULATOR",
}

# --------------------------------------------------------------------------- value parsers

DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`30s`, `1h`, `30d`, `1h30m` or a plain number of seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return float(text)
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * DURATION_UNITS[u] for n, u in parts)


BYTE_UNITS = {
    "": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
    "K": 2**10, "KiB": 2**10, "M": 2**20, "MiB": 2**20, "G": 2**30, "GiB": 2**30, "T": 2**40, "TiB": 2**40,
}


def parse_bytes(text: str) -> int:
    """A byte count as Baton reads it (`10GiB`, `512MiB`, `1048576`): broker/src/config.rs."""
    match = re.fullmatch(r"(\d+)\s*([A-Za-z]*)", text.strip())
    if not match or match.group(2) not in BYTE_UNITS:
        raise ValueError(f"not a byte count: {text!r}")
    return int(match.group(1)) * BYTE_UNITS[match.group(2)]


QUANTITY_UNITS = {
    "": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


def parse_quantity(text: str) -> int:
    """A Kubernetes storage quantity in bytes (`20Gi`, `500M`, `1073741824`)."""
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", str(text))
    if not match or match.group(2) not in QUANTITY_UNITS:
        raise ValueError(f"not a storage quantity: {text!r}")
    return int(match.group(1)) * QUANTITY_UNITS[match.group(2)]


def image_has_registry_host(reference: str) -> bool:
    """Whether an image reference names a registry host (`host.tld/...`, `host:5000/...`)."""
    first, _, rest = reference.partition("/")
    return bool(rest) and ("." in first or ":" in first or first == "localhost")


# --------------------------------------------------------------------------- Containerfiles


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_containerfile(path: Path) -> list[Stage]:
    """Stages of a Containerfile, with line continuations joined and comments dropped."""
    stages: list[Stage] = []
    buffer, start = "", 0
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1].rstrip() + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        buffer = ""
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"{path}:{number}: {keyword} before the first FROM")
        else:
            stages[-1].instructions.append(Instruction(keyword, args, start))
    if buffer:
        raise ValueError(f"{path}: ends inside a line continuation")
    return stages


def exec_form(args: str) -> list[str]:
    """The JSON array of ENTRYPOINT/CMD, or an error for the shell form."""
    value = json.loads(args)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not an exec form: {args}")
    return value


def env_names(instruction: Instruction) -> list[str]:
    """Names set by one ENV instruction (`ENV A=1 B=2` or the legacy `ENV A 1`)."""
    words = shlex.split(instruction.args)
    if words and "=" not in words[0]:
        return [words[0]]
    return [w.split("=", 1)[0] for w in words]


# --------------------------------------------------------------------------- validators


def validate_kubernetes(obj: dict) -> list[str]:
    """Strict schema validation of a Kubernetes object; a list of problems."""
    problems = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            problems.append(f"{version}: {path}: {error.message}")
    return problems


DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _require(obj: Any, path: str, kind: type | tuple, problems: list[str]) -> Any:
    node = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            problems.append(f"missing {path}")
            return None
        node = node[part]
    if not isinstance(node, kind):
        problems.append(f"{path} must be {kind}, got {type(node).__name__}")
        return None
    return node


def _metadata(obj: dict, problems: list[str], dns_label: bool = False) -> None:
    name = _require(obj, "metadata.name", str, problems)
    if name is not None:
        pattern = DNS_LABEL if dns_label else DNS_SUBDOMAIN
        limit = 63 if dns_label else 253
        if not pattern.fullmatch(name) or len(name) > limit:
            problems.append(f"metadata.name {name!r} is not a valid name")
    labels = obj.get("metadata", {}).get("labels", {})
    for key, value in labels.items():
        if not isinstance(value, str) or len(value) > 63 or not re.fullmatch(
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value
        ):
            problems.append(f"label {key}={value!r} is not a valid label value")


def check_route(obj: dict) -> list[str]:
    """Required fields of a route.openshift.io/v1 Route and the values Baton relies on."""
    problems: list[str] = []
    if obj.get("apiVersion") != "route.openshift.io/v1":
        problems.append("apiVersion must be route.openshift.io/v1")
    _metadata(obj, problems, dns_label=True)
    spec = _require(obj, "spec", dict, problems) or {}
    allowed = {"host", "path", "to", "alternateBackends", "port", "tls", "wildcardPolicy", "subdomain", "httpHeaders"}
    problems += [f"unknown field spec.{k}" for k in sorted(set(spec) - allowed)]
    if "host" in spec and not isinstance(spec["host"], str):
        problems.append("spec.host must be a string")
    if spec.get("host") and not DNS_SUBDOMAIN.fullmatch(spec["host"]):
        problems.append(f"spec.host {spec['host']!r} is not a host name")
    to = _require(obj, "spec.to", dict, problems) or {}
    if to.get("kind") != "Service":
        problems.append("spec.to.kind must be Service")
    if not isinstance(to.get("name"), str) or not to.get("name"):
        problems.append("spec.to.name is required")
    if "port" in spec:
        target = spec["port"].get("targetPort") if isinstance(spec["port"], dict) else None
        if not isinstance(target, (str, int)) or target == "":
            problems.append("spec.port.targetPort is required when spec.port is set")
    tls = spec.get("tls")
    if tls is not None:
        if tls.get("termination") not in ("edge", "passthrough", "reencrypt"):
            problems.append("spec.tls.termination must be edge, passthrough or reencrypt")
        if tls.get("insecureEdgeTerminationPolicy") not in (None, "", "None", "Allow", "Redirect"):
            problems.append("spec.tls.insecureEdgeTerminationPolicy is invalid")
    if spec.get("wildcardPolicy") not in (None, "None", "Subdomain"):
        problems.append("spec.wildcardPolicy must be None or Subdomain")
    for key, value in obj.get("metadata", {}).get("annotations", {}).items():
        if not isinstance(value, str):
            problems.append(f"annotation {key} must be a string")
    return problems


def check_keda(obj: dict) -> list[str]:
    """Required fields of KEDA's ScaledObject and TriggerAuthentication (keda.sh/v1alpha1)."""
    problems: list[str] = []
    if obj.get("apiVersion") != "keda.sh/v1alpha1":
        problems.append("apiVersion must be keda.sh/v1alpha1")
    _metadata(obj, problems)
    kind = obj.get("kind")
    if kind == "ScaledObject":
        _require(obj, "spec.scaleTargetRef.name", str, problems)
        triggers = _require(obj, "spec.triggers", list, problems) or []
        if not triggers:
            problems.append("spec.triggers must not be empty")
        for index, trigger in enumerate(triggers):
            if not isinstance(trigger.get("type"), str):
                problems.append(f"spec.triggers[{index}].type is required")
            metadata = trigger.get("metadata")
            if not isinstance(metadata, dict):
                problems.append(f"spec.triggers[{index}].metadata is required")
            else:
                for key, value in metadata.items():
                    if not isinstance(value, str):
                        problems.append(f"spec.triggers[{index}].metadata.{key} must be a string")
        spec = obj.get("spec", {})
        for key in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
            if key in spec and (not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 0):
                problems.append(f"spec.{key} must be a non-negative integer")
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if isinstance(low, int) and isinstance(high, int) and low > high:
            problems.append("spec.minReplicaCount exceeds spec.maxReplicaCount")
    elif kind == "TriggerAuthentication":
        refs = _require(obj, "spec.secretTargetRef", list, problems) or []
        for index, ref in enumerate(refs):
            for key in ("parameter", "name", "key"):
                if not isinstance(ref.get(key), str) or not ref.get(key):
                    problems.append(f"spec.secretTargetRef[{index}].{key} is required")
    else:
        problems.append(f"unexpected KEDA kind {kind}")
    return problems


def check_template_structure(template: dict) -> list[str]:
    """The Template itself (template.openshift.io/v1), which no Kubernetes schema covers."""
    problems: list[str] = []
    if template.get("apiVersion") != "template.openshift.io/v1":
        problems.append("apiVersion must be template.openshift.io/v1")
    if template.get("kind") != "Template":
        problems.append("kind must be Template")
    _metadata(template, problems)
    allowed = {"apiVersion", "kind", "metadata", "message", "labels", "parameters", "objects"}
    problems += [f"unknown top-level field {k}" for k in sorted(set(template) - allowed)]
    objects = template.get("objects")
    if not isinstance(objects, list) or not objects:
        problems.append("objects must be a non-empty list")
    seen = set()
    param_fields = {"name", "displayName", "description", "value", "generate", "from", "required"}
    for index, param in enumerate(template.get("parameters") or []):
        name = param.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9_]+", name):
            problems.append(f"parameters[{index}].name {name!r} is invalid")
        if name in seen:
            problems.append(f"parameter {name} declared twice")
        seen.add(name)
        problems += [f"parameter {name}: unknown field {k}" for k in sorted(set(param) - param_fields)]
        if "value" in param and not isinstance(param["value"], str):
            problems.append(f"parameter {name}: value must be a string (quote it)")
        if "required" in param and not isinstance(param["required"], bool):
            problems.append(f"parameter {name}: required must be a boolean")
    return problems


def containers_of(pod_spec: dict) -> Iterable[tuple[str, dict]]:
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key, []) or []:
            yield key, container
