"""A strict loopback Shopify GraphQL Admin API, serving ``fulfillmentEventCreate`` only.

``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``. Shopify
publishes no OpenAPI (its schema is GraphQL introspection); the checks follow the
``fulfillmentEventCreate`` reference and the ``FulfillmentEventStatus`` enum pages:

* no or wrong token -> 401 ``{"errors": "[API] Invalid API key or access token
  (unrecognized login or wrong password)"}``; a version that is not YYYY-MM -> 404;
  another method -> 405; a body that is not JSON with a ``query`` string -> 400
  ``{"errors": {"query": "Required parameter missing or invalid"}}``;
* a query that is not the ``fulfillmentEventCreate`` mutation -> 200 with top-level
  ``errors`` (``extensions.code`` ``undefinedField``);
* ``variables.fulfillmentEvent`` missing, an unknown input field, a ``status`` outside the
  enum of that API version (DELAYED from 2025-01, CARRIER_PICKED_UP from 2025-07), a
  ``fulfillmentId`` that is not a Fulfillment gid -> 200 with top-level ``errors``
  (``INVALID_VARIABLE``);
* a fulfillment the shop does not have -> 200 with ``userErrors`` ("Fulfillment does not
  exist.");
* ``throttle_next = n`` -> the next n calls answer 200 with ``errors[0].extensions.code``
  ``THROTTLED`` and ``extensions.cost.throttleStatus``.

Success is ``200`` with ``data.fulfillmentEventCreate.fulfillmentEvent`` (``id``,
``status``, ``message``) and empty ``userErrors``, plus ``extensions.cost``.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_TOKEN = "shpat_00000000000000000000000000fake"
VERSION_RE = re.compile(r"^\d{4}-\d{2}$")
GID_RE = re.compile(r"^gid://shopify/Fulfillment/(\d+)$")
BASE_STATUSES = frozenset(
    {
        "ATTEMPTED_DELIVERY",
        "CONFIRMED",
        "DELIVERED",
        "FAILURE",
        "IN_TRANSIT",
        "LABEL_PRINTED",
        "LABEL_PURCHASED",
        "OUT_FOR_DELIVERY",
        "READY_FOR_PICKUP",
    }
)
INPUT_FIELDS = frozenset(
    {
        "fulfillmentId",
        "status",
        "message",
        "happenedAt",
        "estimatedDeliveryAt",
        "address1",
        "city",
        "province",
        "country",
        "zip",
        "latitude",
        "longitude",
    }
)
MUTATION_RE = re.compile(r"^\s*mutation\b[^{]*\{\s*fulfillmentEventCreate\s*\(", re.S)


def statuses_for(version: str) -> frozenset[str]:
    extra = set()
    if version >= "2025-01":
        extra.add("DELAYED")
    if version >= "2025-07":
        extra.add("CARRIER_PICKED_UP")
    return BASE_STATUSES | extra


class FakeShopifyFulfillment(FakeServer):
    name: ClassVar[str] = "shopify_fulfillment"

    def __init__(self, *, access_token: str = DEFAULT_TOKEN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token
        self.fulfillments: dict[str, list[dict[str, Any]]] = {"237894043": []}
        self.throttle_next = 0
        self._next = 944956391

    def add_routes(self) -> None:
        self.route("*", "/admin/api/{version}/graphql.json", self.graphql)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        return json_response(
            {"errors": message or ("Not Found" if status == 404 else f"HTTP {status}")}, status
        )

    def _cost(self, requested: int = 10, available: float = 990.0) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": requested if available >= requested else None,
                "throttleStatus": {
                    "maximumAvailable": 2000.0,
                    "currentlyAvailable": available,
                    "restoreRate": 100.0,
                },
            }
        }

    def _errors(self, message: str, code: str) -> web.Response:
        return json_response(
            {
                "errors": [{"message": message, "extensions": {"code": code}}],
                "extensions": self._cost(),
            }
        )

    async def graphql(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        token = rec.headers.get("x-shopify-access-token", "")
        if not secrets.compare_digest(token, self.access_token):
            return self.error_response(
                401, "[API] Invalid API key or access token (unrecognized login or wrong password)"
            )
        version = request.match_info["version"]
        if not VERSION_RE.match(version):
            return self.error_response(404)
        if request.method != "POST":
            return self.error_response(405, "Method Not Allowed")
        body = rec.fields if rec.content_type == "application/json" else None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return json_response(
                {"errors": {"query": "Required parameter missing or invalid"}}, 400
            )
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return json_response(
                {
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {
                                "code": "THROTTLED",
                                "documentation": "https://shopify.dev/api/usage/rate-limits",
                            },
                        }
                    ],
                    "extensions": self._cost(requested=10, available=4.0),
                }
            )
        if not MUTATION_RE.match(body["query"]):
            return self._errors("Field is not defined on the query", "undefinedField")
        variables = body.get("variables") or {}
        event = variables.get("fulfillmentEvent") if isinstance(variables, dict) else None
        if not isinstance(event, dict):
            return self._errors(
                "Variable $fulfillmentEvent of type FulfillmentEventInput! was provided invalid value",
                "INVALID_VARIABLE",
            )
        unknown = sorted(set(event) - INPUT_FIELDS)
        if unknown:
            return self._errors(
                f"Variable $fulfillmentEvent ... Field is not defined on FulfillmentEventInput: {unknown[0]}",
                "INVALID_VARIABLE",
            )
        allowed = statuses_for(version)
        if event.get("status") not in allowed:
            return self._errors(
                f'Variable $fulfillmentEvent ... Expected "{event.get("status")}" to be one of: {", ".join(sorted(allowed))}',
                "INVALID_VARIABLE",
            )
        match = GID_RE.match(str(event.get("fulfillmentId", "")))
        if not match:
            return self._errors(
                "Variable $fulfillmentEvent ... Invalid global id for fulfillmentId",
                "INVALID_VARIABLE",
            )
        message = event.get("message")
        if message is not None and not isinstance(message, str):
            return self._errors(
                "Variable $fulfillmentEvent ... message must be a String", "INVALID_VARIABLE"
            )
        events = self.fulfillments.get(match.group(1))
        if events is None:
            payload = {
                "fulfillmentEvent": None,
                "userErrors": [
                    {
                        "field": ["fulfillmentEvent", "fulfillmentId"],
                        "message": "Fulfillment does not exist.",
                    }
                ],
            }
            return json_response(
                {"data": {"fulfillmentEventCreate": payload}, "extensions": self._cost()}
            )
        self._next += 1
        created = {
            "id": f"gid://shopify/FulfillmentEvent/{self._next}",
            "status": event["status"],
            "message": message,
        }
        events.append(created)
        return json_response(
            {
                "data": {"fulfillmentEventCreate": {"fulfillmentEvent": created, "userErrors": []}},
                "extensions": self._cost(),
            }
        )
