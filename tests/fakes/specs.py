"""The providers' own API specifications, loaded lazily, and checks built from them.

The JSON files in ``specs/`` are copied unmodified from the providers' public spec
repositories (see ``specs/README.md``). A fake validates requests against them, so a
request the real API would refuse is refused by the fake too.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

SPEC_DIR = Path(__file__).resolve().parent / "specs"


@cache
def load_spec(filename: str) -> dict[str, Any]:
    """A spec file from ``specs/``, parsed once per process."""
    return orjson.loads((SPEC_DIR / filename).read_bytes())  # type: ignore[no-any-return]


def resolve_refs(node: Any, root: dict[str, Any], _seen: tuple[str, ...] = ()) -> Any:
    """A copy of ``node`` with every local ``$ref`` replaced by what it points to.

    Sibling keys of a ``$ref`` (allowed in OpenAPI 3.1) are kept, except descriptions.
    """
    if isinstance(node, list):
        return [resolve_refs(item, root, _seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node and isinstance(node["$ref"], str) and node["$ref"].startswith("#/"):
        ref = node["$ref"]
        if ref in _seen:
            raise ValueError(f"recursive $ref {ref} is not supported")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        resolved = dict(resolve_refs(target, root, (*_seen, ref)))
        for key, value in node.items():
            if key not in ("$ref", "description"):
                resolved.setdefault(key, resolve_refs(value, root, _seen))
        return resolved
    return {key: resolve_refs(value, root, _seen) for key, value in node.items()}


def request_schema(filename: str, path: str, method: str, content_type: str) -> dict[str, Any]:
    """The request body schema of one operation, with ``$ref`` resolved."""
    spec = load_spec(filename)
    operation = spec["paths"][path][method.lower()]
    body = resolve_refs(operation["requestBody"], spec)
    schema = body["content"][content_type]["schema"]
    return schema  # type: ignore[no-any-return]


# ------------------------------------------------------------------ form parameters

_BOOLEANS = {"true", "false"}


def check_form_value(name: str, value: str, schema: dict[str, Any]) -> str | None:
    """Why ``value`` does not fit the parameter's schema, or None when it does.

    Form fields are strings on the wire: booleans, integers and numbers are checked by
    their spelling; ``format: uri`` must be an absolute http(s) URL; ``date-time`` ISO 8601.
    """
    kind = schema.get("type")
    if kind == "array":
        schema = schema.get("items", {})
        kind = schema.get("type")
    if kind == "boolean" and value.lower() not in _BOOLEANS:
        return f"{name} must be true or false"
    if kind == "integer" and not re.fullmatch(r"[+-]?\d+", value):
        return f"{name} must be an integer"
    if kind == "number":
        try:
            float(value)
        except ValueError:
            return f"{name} must be a number"
    if "enum" in schema and value not in schema["enum"]:
        return f"{name} must be one of {', '.join(map(str, schema['enum']))}"
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"{name} is shorter than {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{name} is longer than {schema['maxLength']} characters"
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return f"{name} does not match {schema['pattern']}"
    fmt = schema.get("format")
    if fmt == "uri" and not schema.get("x-twilio", {}).get("ignoreFormat"):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"{name} must be an absolute http(s) URL"
    if fmt == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"{name} must be an ISO 8601 date-time"
    return None


def check_form_params(
    pairs: list[tuple[str, str]], properties: dict[str, dict[str, Any]]
) -> list[str]:
    """Problems with form ``pairs`` against a spec's request ``properties``: unknown
    names, a non-array name given twice, and values that do not fit their schema."""
    problems: list[str] = []
    seen: set[str] = set()
    for name, value in pairs:
        schema = properties.get(name)
        if schema is None:
            problems.append(f"unknown parameter {name}")
            continue
        if name in seen and schema.get("type") != "array":
            problems.append(f"parameter {name} given more than once")
        seen.add(name)
        problem = check_form_value(name, value, schema)
        if problem:
            problems.append(problem)
    return problems
