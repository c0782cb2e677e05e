"""Schemathesis hooks for scripts/api-contract.

The submit form's file parts are the additional properties of its schema (a file's part name is
the input's name, chosen by the client), declared `contentMediaType: application/octet-stream`.
Schemathesis reads file-ness only from the declared `properties`, so it would send those parts
without a filename, i.e. as text parts, which Baton rightly refuses as unknown fields. This
serializer gives every part whose name is not a declared property a filename, as the document
says such parts are sent. Nothing else changes.
"""

import re

import schemathesis
from schemathesis.transport.requests import REQUESTS_TRANSPORT, multipart_serializer


def _declared_properties(ctx):
    body = ctx.case.operation.get_body_for_media_type(ctx.case.media_type or "multipart/form-data")
    schema = (body.resolved_schema if body is not None else None) or {}
    properties = schema.get("properties")
    return set(properties) if isinstance(properties, dict) else set()


# Registered on the transport itself: the public decorator wraps a serializer's result as the raw
# body, while this one returns the parts for `requests` to encode, as the built-in one does.
@REQUESTS_TRANSPORT.serializer("multipart/form-data")
def multipart_with_named_files(ctx, value):
    prepared = multipart_serializer(ctx, value)
    files = prepared.get("files")
    if not files:
        return prepared
    declared = _declared_properties(ctx)
    parts = []
    for name, part in files:
        if isinstance(part, tuple) and part[0] is None and name not in declared:
            part = (name, *part[1:])
        parts.append((name, part))
    prepared["files"] = parts
    return prepared


# A duration's range (1s to 30d) is in the document's words only: JSON Schema cannot say it. A
# well-formed timeout out of that range is refused (400 `invalid_timeout`), as documented; the
# check that schema-valid requests are accepted would report it, so that one outcome, and only
# for such a request, is dropped.
_SECONDS = {
    **dict.fromkeys(["nanos", "nsec", "ns"], 1e-9),
    **dict.fromkeys(["usec", "us", "\u00b5s"], 1e-6),
    **dict.fromkeys(["millis", "msec", "ms"], 1e-3),
    **dict.fromkeys(["seconds", "second", "secs", "sec", "s"], 1),
    **dict.fromkeys(["minutes", "minute", "mins", "min", "m"], 60),
    **dict.fromkeys(["hours", "hour", "hrs", "hr", "h"], 3600),
    **dict.fromkeys(["days", "day", "d"], 86400),
    **dict.fromkeys(["weeks", "week", "wks", "wk", "w"], 7 * 86400),
    **dict.fromkeys(["months", "month", "M"], 2_630_016),
    **dict.fromkeys(["years", "year", "yrs", "yr", "y"], 31_557_600),
}
_TERM = re.compile(r"[\t\n\x0b\f\r ]*([0-9]+)[\t\n\x0b\f\r ]*([a-zA-Z\u00b5]+)[\t\n\x0b\f\r ]*")


def _out_of_range(value):
    """Whether `value` is a duration Baton can read that lies outside 1s to 30d."""
    if not isinstance(value, str):
        return False
    terms = _TERM.findall(value)
    if not terms or _TERM.sub("", value).strip():
        return False
    if any(unit not in _SECONDS for _, unit in terms):
        return False
    seconds = sum(int(number) * _SECONDS[unit] for number, unit in terms)
    return not 1 <= seconds <= 30 * 86400


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if getattr(failure, "code", None) != "ST202":  # schema-valid request rejected
        return True
    try:
        code = response.json()["error"]["code"]
    except Exception:
        return True
    body = case.body if isinstance(case.body, dict) else {}
    timeouts = (body.get("queue_timeout"), body.get("run_timeout"))
    return not (code == "invalid_timeout" and any(_out_of_range(t) for t in timeouts))
