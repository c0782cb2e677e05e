"""A small stand-in for `oc process`: parameter values and substitution in OpenShift Templates.

It follows what `oc process` does:

* a parameter's value is the one given, else its `value` (default); `generate: expression`
  is not supported (Baton's templates avoid it) unless a value is given;
* a required parameter left without a value is an error, and so is a value given for a
  parameter the template does not declare;
* `${P}` is replaced inside any string (values and mapping keys, anywhere in it, several
  times); a `${P}` naming no parameter is left as it is;
* a string that is exactly `${{P}}` is replaced by the value parsed as JSON (so `2` gives the
  integer 2 and `{"a": 1}` an object); a value that is not JSON stays a string;
* the template's `labels` are added to every object's `metadata.labels`.
"""

from __future__ import annotations

import copy
import json
import secrets
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

STRING_PARAM = re.compile(r"\$\{([a-zA-Z0-9_]+?)\}")
NON_STRING_PARAM = re.compile(r"^\$\{\{([a-zA-Z0-9_]+)\}\}$")
# Any reference, for the declared/used check.
ANY_PARAM = re.compile(r"\$\{\{?([a-zA-Z0-9_]+)\}?\}")


class TemplateError(Exception):
    """The template cannot be processed with the given parameters."""


def load(path: Path | str) -> dict:
    with open(path, encoding="utf-8") as handle:
        template = yaml.safe_load(handle)
    if not isinstance(template, dict):
        raise TemplateError(f"{path}: not a YAML mapping")
    return template


def parameter_values(template: Mapping, given: Mapping[str, str] | None = None) -> dict[str, str]:
    """The value of every declared parameter, or TemplateError."""
    given = dict(given or {})
    declared = [p["name"] for p in template.get("parameters", [])]
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameter name(s): {', '.join(unknown)}")
    values: dict[str, str] = {}
    missing = []
    for param in template.get("parameters", []):
        name = param["name"]
        if name in given:
            value = given[name]
        elif param.get("generate"):
            value = _generate(name, param)
        else:
            value = param.get("value", "")
        if not isinstance(value, str):
            raise TemplateError(f"parameter {name}: value must be a string, got {value!r}")
        if value == "" and param.get("required", False):
            missing.append(name)
        values[name] = value
    if missing:
        raise TemplateError(f"parameter(s) required and must be specified: {', '.join(missing)}")
    return values


GENERATE_FROM = re.compile(r"^\[([^\]]+)\]\{(\d+)\}$")


def _generate(name: str, param: Mapping) -> str:
    """A value for a `generate: expression` parameter, as `oc process` makes one; only the
    `[ranges]{n}` form is supported, the one this project's templates use."""
    if param["generate"] != "expression":
        raise TemplateError(f"parameter {name}: generate must be `expression`")
    match = GENERATE_FROM.match(param.get("from", ""))
    if not match:
        raise TemplateError(f"parameter {name}: `from` must be [ranges]{{n}}, got {param.get('from')!r}")
    ranges, length = match.group(1), int(match.group(2))
    alphabet = []
    i = 0
    while i < len(ranges):
        if i + 2 < len(ranges) and ranges[i + 1] == "-":
            alphabet.extend(chr(c) for c in range(ord(ranges[i]), ord(ranges[i + 2]) + 1))
            i += 3
        else:
            alphabet.append(ranges[i])
            i += 1
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _substitute_string(text: str, values: Mapping[str, str]) -> tuple[Any, bool]:
    """The substituted value and whether it is still a string."""
    whole = NON_STRING_PARAM.match(text)
    if whole and whole.group(1) in values:
        raw = values[whole.group(1)]
        try:
            return json.loads(raw), False
        except ValueError:
            return raw, True

    def replace(match: re.Match) -> str:
        name = match.group(1)
        return values[name] if name in values else match.group(0)

    return STRING_PARAM.sub(replace, text), True


def substitute(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _substitute_string(node, values)[0]
    if isinstance(node, list):
        return [substitute(item, values) for item in node]
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            new_key = substitute(key, values) if isinstance(key, str) else key
            if not isinstance(new_key, str):
                raise TemplateError(f"mapping key {key!r} became a non-string {new_key!r}")
            result[new_key] = substitute(value, values)
        return result
    return node


def process(template: Mapping, given: Mapping[str, str] | None = None) -> list[dict]:
    """The template's objects with parameters substituted, as `oc process` returns them."""
    values = parameter_values(template, given)
    labels = substitute(template.get("labels") or {}, values)
    objects = []
    for raw in template.get("objects", []):
        obj = substitute(copy.deepcopy(raw), values)
        if labels:
            metadata = obj.setdefault("metadata", {})
            metadata.setdefault("labels", {}).update(labels)
        objects.append(obj)
    return objects


def strings_in(node: Any):
    """Every string in a YAML tree, mapping keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(key)
            yield from strings_in(value)


def referenced_parameters(template: Mapping) -> set[str]:
    """Names of every parameter referenced in the objects, labels and message."""
    names: set[str] = set()
    for key in ("objects", "labels", "message"):
        for text in strings_in(template.get(key)):
            names.update(ANY_PARAM.findall(text))
    return names


def main(argv: list[str] | None = None) -> int:
    """`python ocp_template.py TEMPLATE [-p NAME=VALUE]...`: print the processed List as YAML."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("template")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.param)
    try:
        items = process(load(args.template), given)
    except TemplateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
