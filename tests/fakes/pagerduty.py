"""A strict loopback PagerDuty Events API v2 (``POST /v2/enqueue``).

The checks follow PagerDuty's own OpenAPI description of the Events API v2
(``PagerDuty/api-schema``, ``reference/events-v2/openapiv3.json``): ``routing_key`` and
``event_action`` (trigger, acknowledge, resolve) required; ``dedup_key`` required unless
the action is trigger; a trigger needs ``payload.summary``, ``payload.source`` and
``payload.severity`` (critical, warning, error, info); ``links[].href`` and
``images[].src`` required. Beyond the schema: ``dedup_key`` at most 255 characters,
``summary`` at most 1024, the routing key 32 letters and digits, unknown fields refused.

Errors are ``400`` with ``{"status": "invalid event", "message": "Event object is
invalid", "errors": [...]}`` (a routing key the fake does not know: ``Invalid routing
key``); a body that is not JSON -> 400 ``Unrecognized object``. Another method -> 405,
another path -> 404. Success is ``202`` with ``{"status": "success", "message": "Event
processed", "dedup_key"}``. ``fake.alerts`` maps each dedup_key to its state.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_ROUTING_KEY = "e93facc04764012d7bfb002500d5d1a6"
ACTIONS = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}
SEVERITIES = frozenset({"critical", "warning", "error", "info"})
EVENT_FIELDS = frozenset(
    {
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "client",
        "client_url",
        "links",
        "images",
    }
)
PAYLOAD_FIELDS = frozenset(
    {"summary", "timestamp", "severity", "source", "component", "group", "class", "custom_details"}
)


def event_problems(event: Any, known_key: str) -> list[str]:
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    problems = [f"Unknown field '{k}'" for k in sorted(set(event) - EVENT_FIELDS)]
    key = event.get("routing_key")
    if not isinstance(key, str) or not key:
        return [*problems, "'routing_key' is missing or blank"]
    if len(key) != 32:
        problems.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    if not key.isalnum():
        problems.append("'routing_key' cannot contain non-alphanumeric characters.")
    action = event.get("event_action")
    if action not in ACTIONS:
        problems.append("'event_action' is missing or invalid")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        problems.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        problems.append(f"'dedup_key' is required for event_action {action}")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            problems.append("'payload' is missing or invalid")
        else:
            problems += [
                f"Unknown field 'payload.{k}'" for k in sorted(set(payload) - PAYLOAD_FIELDS)
            ]
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                problems.append("'payload.summary' is missing or blank")
            elif len(summary) > 1024:
                problems.append("'payload.summary' is longer than 1024 characters")
            if not isinstance(payload.get("source"), str) or not payload["source"].strip():
                problems.append("'payload.source' is missing or blank")
            if payload.get("severity") not in SEVERITIES:
                problems.append(
                    "'payload.severity' is invalid (must be one of critical, error, warning, info)"
                )
            details = payload.get("custom_details")
            if details is not None and not isinstance(details, dict):
                problems.append("'payload.custom_details' must be an object")
    for link in event.get("links") or []:
        if not isinstance(link, dict) or not link.get("href"):
            problems.append("'links[].href' is required")
    for image in event.get("images") or []:
        if not isinstance(image, dict) or not str(image.get("src", "")).startswith("https://"):
            problems.append("'images[].src' is required and must be HTTPS")
    if not problems and not secrets.compare_digest(key, known_key):
        problems.append("Invalid routing key")
    return problems


class FakePagerDuty(FakeServer):
    name: ClassVar[str] = "pagerduty"

    def __init__(self, *, routing_key: str = DEFAULT_ROUTING_KEY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.routing_key = routing_key
        self.alerts: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []

    def add_routes(self) -> None:
        self.route("*", "/v2/enqueue", self.enqueue)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if status == 429:
            body = {
                "status": "throttle event",
                "message": message or "Too many API calls at a time.",
            }
        elif status >= 500:
            body = {"status": "error", "message": message or "Internal Server Error", "errors": []}
        else:
            body = {
                "status": "invalid event",
                "message": message or "Event object is invalid",
                "errors": [],
            }
        return json_response(body, status)

    async def _unmatched(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return web.Response(status=404, text="Not Found")

    async def enqueue(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if request.method != "POST":
            return web.Response(status=405, text="Method Not Allowed")
        if rec.content_type != "application/json" or rec.fields is None:
            return json_response(
                {
                    "status": "Unrecognized object",
                    "message": "Event object format is unrecognized",
                    "errors": ["JSON parse error"],
                },
                400,
            )
        problems = event_problems(rec.fields, self.routing_key)
        if problems:
            return json_response(
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": problems,
                },
                400,
            )
        event = rec.fields
        dedup = event.get("dedup_key") or secrets.token_hex(16)
        self.alerts[dedup] = ACTIONS[event["event_action"]]
        self.events.append(event)
        return json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup}, 202
        )
