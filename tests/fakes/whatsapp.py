"""A strict loopback WhatsApp Cloud API (``/messages``), checked against Meta's own spec.

``POST /{Version}/{Phone-Number-ID}/messages`` with ``Authorization: Bearer <token>`` and
a JSON body validated against the ``Message`` schema of Meta's "Business Messaging API"
v23.0 OpenAPI file (``specs/whatsapp_business_messaging_v23.0.yaml``, unmodified). The
spec's discriminators (message ``type``, component ``type``, parameter ``type``) are
applied as OpenAPI means them, and ``allOf`` parts are merged before validating, so
``TextMessage`` (whose second part says ``additionalProperties: false``) accepts the
common properties and nothing else. ``text.body`` is limited to 4096 characters
(``TextMessage_1``).

Refused as the Graph API refuses them (HTTP status, Graph ``code``):

* no or wrong token -> 401, 190; another phone number id -> 400, 100 (subcode 33);
  an unknown path -> 400, 2500; another method or a body that is not JSON -> 400, 100;
* a body the spec refuses, ``messaging_product`` not ``whatsapp`` -> 400, 100;
* ``to`` not a phone number -> 400, 131009;
* a template the fake does not know -> 404, 132001; a language it has no translation
  for -> 404, 132001; parameter count mismatch -> 400, 132000; a parameter with a new
  line, tab or five spaces in a row -> 400, 132018;
* free text to a number in ``closed_windows`` -> 400, 131047 (re-engagement message);
  any message to a number in ``undeliverable`` -> 400, 131026.

Success is ``200`` with ``contacts`` and ``messages[0].id`` (``wamid.`` + base64) and
``message_status: accepted``. Sent messages are kept in ``fake.sent``.
"""

from __future__ import annotations

import base64
import re
import secrets
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import yaml
from aiohttp import web
from jsonschema import Draft202012Validator

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

SPEC_FILE = Path(__file__).resolve().parent / "specs" / "whatsapp_business_messaging_v23.0.yaml"
DEFAULT_TOKEN = "EAAfake-whatsapp-system-user-token-0001"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"
MAX_TEXT_CHARS = 4096
PHONE_RE = re.compile(r"^\+?[1-9]\d{6,14}$")
VERSION_RE = re.compile(r"^v\d+\.\d+$")

#: approved templates: name -> (languages, number of body parameters)
DEFAULT_TEMPLATES: dict[str, tuple[frozenset[str], int]] = {
    "order_ready": (frozenset({"en_US", "en", "de"}), 1),
    "order_out_for_delivery": (frozenset({"en_US", "en"}), 2),
    "hello_world": (frozenset({"en_US"}), 0),
}


# ---------------------------------------------------------------- OpenAPI -> JSON Schema


@cache
def load_spec() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_FILE.open("rb") as fh:
        return yaml.load(fh, Loader=loader)  # type: ignore[no-any-return]


def _lookup(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target  # type: ignore[no-any-return]


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One object schema from ``allOf`` parts: properties and required united, a
    property given twice must satisfy both, ``additionalProperties: false`` anywhere
    closes the merged object."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "properties":
                props = merged.setdefault("properties", {})
                for name, schema in value.items():
                    props[name] = {"allOf": [props[name], schema]} if name in props else schema
            elif key == "required":
                merged["required"] = sorted(set(merged.get("required", [])) | set(value))
            elif key == "additionalProperties":
                if value is False or "additionalProperties" not in merged:
                    merged["additionalProperties"] = value
            elif key == "allOf":
                merged.setdefault("allOf", []).extend(value)
            else:
                merged.setdefault(key, value)
    return merged


_DROP = {"discriminator", "example", "examples", "description", "x-discord-union"}


def to_json_schema(
    node: Any,
    spec: dict[str, Any],
    name: str | None = None,
    skip: frozenset[str] = frozenset(),
    depth: int = 0,
) -> Any:
    """``node`` as a plain JSON Schema: refs resolved, discriminators as if/then, allOf
    merged. ``skip`` holds schemas whose discriminator is being expanded (a mapping
    target refers back to its base through ``allOf``)."""
    if depth > 40:
        return {}
    if isinstance(node, list):
        return [to_json_schema(n, spec, None, skip, depth + 1) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        return to_json_schema(_lookup(spec, ref), spec, ref, skip, depth + 1)
    disc = node.get("discriminator")
    if isinstance(disc, dict) and disc.get("mapping") and name and name not in skip:
        inner = skip | {name}
        prop = disc["propertyName"]
        base = {k: v for k, v in node.items() if k not in ("discriminator", "oneOf", "anyOf")}
        parts: list[dict[str, Any]] = [
            to_json_schema(base, spec, name, inner, depth + 1),
            {"required": [prop], "properties": {prop: {"enum": list(disc["mapping"])}}},
        ]
        for value, ref in disc["mapping"].items():
            then = to_json_schema({"$ref": ref}, spec, None, inner, depth + 1)
            parts.append(
                {"if": {"properties": {prop: {"const": value}}, "required": [prop]}, "then": then}
            )
        return {"allOf": parts}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {p: to_json_schema(s, spec, None, skip, depth + 1) for p, s in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value, spec, None, skip, depth + 1)
        elif key in ("oneOf", "anyOf"):
            out[key] = to_json_schema(value, spec, None, skip, depth + 1)
        elif key == "allOf":
            parts = [to_json_schema(p, spec, None, skip, depth + 1) for p in value]
            out = _merge([out, *parts])
        else:
            out[key] = value
    return out


@cache
def message_validator() -> Draft202012Validator:
    """A validator for the /messages request body, from Meta's spec, once per process."""
    spec = load_spec()
    operation = spec["paths"]["/{Version}/{Phone-Number-ID}/messages"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = to_json_schema({"$ref": ref}, spec)
    return Draft202012Validator(schema)


def message_problems(body: Any) -> list[str]:
    """Why Meta's spec refuses ``body`` (empty when it accepts it)."""
    if not isinstance(body, dict):
        return ["the request body must be a JSON object"]
    problems = []
    for error in message_validator().iter_errors(body):
        where = ".".join(str(p) for p in error.absolute_path) or "(body)"
        problems.append(f"{where}: {error.message}")
    return problems


# ---------------------------------------------------------------- the fake


def graph_error_body(
    code: int, message: str, *, details: str | None = None, subcode: int | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "A" + secrets.token_urlsafe(15),
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


class FakeWhatsApp(FakeServer):
    name: ClassVar[str] = "whatsapp"

    def __init__(
        self,
        *,
        access_token: str = DEFAULT_TOKEN,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.templates = dict(DEFAULT_TEMPLATES)
        #: recipients whose 24-hour window is closed: free text gets 131047
        self.closed_windows: set[str] = set()
        #: recipients that cannot receive messages: 131026
        self.undeliverable: set[str] = set()
        self.sent: dict[str, dict[str, Any]] = {}
        message_validator()  # load the spec now, not on the first request

    def add_routes(self) -> None:
        self.route("*", "/{version}/{phone_number_id}/messages", self.messages)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if code is None:
            code = {401: 190, 404: 2500, 429: 130429}.get(status, 131000 if status >= 500 else 100)
        if message is None:
            message = {
                190: "Invalid OAuth access token - Cannot parse access token",
                2500: "Unknown path components",
                130429: "(#130429) Rate limit hit",
                131000: "(#131000) Something went wrong",
            }.get(code, "(#100) Invalid parameter")
        return json_response(graph_error_body(code, message), status)

    def _error(
        self, status: int, code: int, title: str, details: str, subcode: int | None = None
    ) -> web.Response:
        body = graph_error_body(code, f"(#{code}) {title}", details=details, subcode=subcode)
        return json_response(body, status)

    async def _unmatched(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return self.error_response(400, "Unknown path components: " + request.path, 2500)

    async def messages(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if not VERSION_RE.match(request.match_info["version"]):
            return self.error_response(400, "Unknown path components", 2500)
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token, self.access_token):
            return self.error_response(401)
        if request.match_info["phone_number_id"] != self.phone_number_id:
            return self._error(
                400,
                100,
                "Invalid parameter",
                f"Unsupported post request. Object with ID "
                f"'{request.match_info['phone_number_id']}' does not exist",
                subcode=33,
            )
        if request.method != "POST":
            return self._error(400, 100, "Invalid parameter", f"Unsupported {request.method}")
        if rec.content_type != "application/json" or rec.fields is None:
            return self._error(400, 100, "Invalid parameter", "the body must be JSON")
        body = rec.fields
        problems = message_problems(body)
        if problems:
            return self._error(400, 100, "Invalid parameter", "; ".join(problems[:5]))
        if body.get("messaging_product") != "whatsapp":
            return self._error(400, 100, "Invalid parameter", "messaging_product must be whatsapp")
        to = body["to"]
        if not PHONE_RE.match(to):
            return self._error(400, 131009, "Parameter value is not valid", f"to: {to}")
        wa_id = to.removeprefix("+")
        kind = body["type"]
        if kind == "text":
            if len(body["text"].get("body") or "") > MAX_TEXT_CHARS:
                return self._error(
                    400, 100, "Invalid parameter", "text.body is longer than 4096 characters"
                )
            if not (body["text"].get("body") or "").strip():
                return self._error(400, 100, "Invalid parameter", "text.body is required")
            if wa_id in self.closed_windows:
                return self._error(
                    400,
                    131047,
                    "Re-engagement message",
                    "Message failed to send because more than 24 hours have passed since "
                    "the customer last replied to this number.",
                )
        elif kind == "template":
            refused = self._check_template(body["template"])
            if refused is not None:
                return refused
        else:
            return self._error(400, 100, "Invalid parameter", f"the fake sends no {kind}")
        if wa_id in self.undeliverable:
            return self._error(400, 131026, "Message Undeliverable", "Unable to deliver")
        message_id = "wamid." + base64.b64encode(secrets.token_bytes(30)).decode()
        self.sent[message_id] = body
        return json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": wa_id}],
                "messages": [{"id": message_id, "message_status": "accepted"}],
            }
        )

    def _check_template(self, template: dict[str, Any]) -> web.Response | None:
        name = template["name"]
        language = template["language"]["code"]
        known = self.templates.get(name)
        if known is None or language not in known[0]:
            return self._error(
                404,
                132001,
                "Template name does not exist in the translation",
                f"template name ({name}) does not exist in {language}",
            )
        params: list[dict[str, Any]] = []
        for component in template.get("components") or []:
            if component.get("type") == "body":
                params.extend(component.get("parameters") or [])
        if len(params) != known[1]:
            return self._error(
                400,
                132000,
                "Number of parameters does not match the expected number of params",
                f"body: number of localizable_params ({len(params)}) does not match the "
                f"expected number of params ({known[1]})",
            )
        for param in params:
            text = str(param.get("text", ""))
            if re.search(r"[\n\t]| {5,}", text):
                return self._error(
                    400,
                    132018,
                    "There was an issue with the parameters in your template.",
                    "Param text cannot have new-line/tab characters or more than 4 "
                    "consecutive spaces",
                )
        return None
