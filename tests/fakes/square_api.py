"""A loopback Square Orders API: ``GET /v2/orders/{order_id}`` as Square answers it.

Checked as Square checks them, answered in Square's error shape
``{"errors": [{"category", "code", "detail"}]}``:

* ``Authorization: Bearer <access token>`` missing, malformed or wrong -> 401,
  ``AUTHENTICATION_ERROR`` / ``UNAUTHORIZED``;
* ``Square-Version`` not a ``YYYY-MM-DD`` date -> 400, ``INVALID_REQUEST_ERROR`` /
  ``INVALID_SQUARE_VERSION_FORMAT``. Square itself uses the application's pinned version
  when the header is missing; this fake, being strict, refuses that too (our adapter must
  always pin its version) unless built with ``require_version=False``;
* an order it does not hold -> 404, ``INVALID_REQUEST_ERROR`` / ``NOT_FOUND``;
* another path or method -> 404 ``NOT_FOUND``.

A known order is ``200 {"order": {...}}``. Orders are registered with ``add_order`` (the
``order(...)`` helper builds one shaped like Square's Order object: fulfilment with
recipient, pickup or delivery details, state, version, totals). The harness faults
(``fail_next`` 429/5xx, ``delay_next``, ``reset_next``, ``truncate_next``) apply; a failure
is answered in Square's error shape (429 ``RATE_LIMIT_ERROR`` / ``RATE_LIMITED``, 5xx
``API_ERROR``).
"""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_ACCESS_TOKEN = "EAAAl-fake-square-access-token-0001"
VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: status -> (category, code, detail) when the fault or check gives none
_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("INVALID_REQUEST_ERROR", "BAD_REQUEST", "Bad request."),
    401: ("AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized."),
    403: ("AUTHENTICATION_ERROR", "FORBIDDEN", "You are not allowed to access this resource."),
    404: ("INVALID_REQUEST_ERROR", "NOT_FOUND", "Resource not found."),
    429: ("RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limit exceeded."),
    500: ("API_ERROR", "INTERNAL_SERVER_ERROR", "An internal error has occurred."),
    502: ("API_ERROR", "BAD_GATEWAY", "Bad gateway."),
    503: ("API_ERROR", "SERVICE_UNAVAILABLE", "Service unavailable."),
    504: ("API_ERROR", "GATEWAY_TIMEOUT", "Gateway timeout."),
}


def square_error(status: int, code: str | None = None, detail: str | None = None) -> web.Response:
    category, default_code, default_detail = _ERRORS.get(
        status, ("API_ERROR" if status >= 500 else "INVALID_REQUEST_ERROR", "ERROR", "Error.")
    )
    return json_response(
        {
            "errors": [
                {
                    "category": category,
                    "code": code or default_code,
                    "detail": detail or default_detail,
                }
            ]
        },
        status,
    )


class FakeSquare(FakeServer):
    name: ClassVar[str] = "square"

    def __init__(
        self,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        require_version: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token
        self.require_version = require_version
        self.orders: dict[str, dict[str, Any]] = {}

    def add_order(self, order: dict[str, Any]) -> dict[str, Any]:
        """Serve ``order`` (a copy) from now on; replaces one with the same id."""
        self.orders[order["id"]] = copy.deepcopy(order)
        return order

    def add_routes(self) -> None:
        self.route("GET", "/v2/orders/{order_id}", self.retrieve_order)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        return square_error(status, code, message)

    async def retrieve_order(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            token.strip(), self.access_token
        ):
            return square_error(401)
        version = rec.headers.get("square-version")
        if version is None and self.require_version:
            return square_error(
                400,
                "INVALID_SQUARE_VERSION_FORMAT",
                "Square-Version header is required by this fake (Square uses the app's default).",
            )
        if version is not None and not VERSION_RE.match(version):
            return square_error(
                400,
                "INVALID_SQUARE_VERSION_FORMAT",
                f"Invalid Square-Version format: {version!r}. Expected YYYY-MM-DD.",
            )
        order_id = request.match_info["order_id"]
        order = self.orders.get(order_id)
        if order is None:
            return square_error(404, "NOT_FOUND", f"Order with id `{order_id}` not found.")
        return json_response({"order": order})


def order(
    order_id: str,
    *,
    kind: str = "PICKUP",
    state: str = "PROPOSED",
    order_state: str = "OPEN",
    version: int = 1,
    name: str | None = "Maria Lopez",
    phone: str | None = "+12125550123",
    email: str | None = None,
    reference_id: str | None = None,
    ticket_name: str | None = None,
    location_id: str = "FPYCBCHYMXFK1",
    when: str = "2026-03-02T18:00:00Z",
    total_cents: int = 2350,
    currency: str = "USD",
    uid: str = "VWJ1N9leLqjSDLvF2hvYjD",
    fulfillments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An Order as ``GET /v2/orders/{id}`` returns it (abridged to what matters here)."""
    recipient = {
        k: v
        for k, v in (("display_name", name), ("phone_number", phone), ("email_address", email))
        if v is not None
    }
    details_key = {
        "PICKUP": "pickup_details",
        "DELIVERY": "delivery_details",
        "SHIPMENT": "shipment_details",
        "IN_STORE": "in_store_details",
    }.get(kind, "pickup_details")
    details: dict[str, Any] = {"recipient": recipient, "placed_at": when}
    if kind == "PICKUP":
        details.update(schedule_type="SCHEDULED", pickup_at="2026-03-02T18:30:00Z")
    elif kind == "DELIVERY":
        details.update(schedule_type="SCHEDULED", deliver_at="2026-03-02T18:45:00Z")
    body: dict[str, Any] = {
        "id": order_id,
        "location_id": location_id,
        "source": {"name": "Square Online"},
        "line_items": [
            {
                "uid": "li-1",
                "name": "Margherita pizza",
                "quantity": "1",
                "base_price_money": {"amount": total_cents, "currency": currency},
                "total_money": {"amount": total_cents, "currency": currency},
            }
        ],
        "fulfillments": fulfillments
        if fulfillments is not None
        else [{"uid": uid, "type": kind, "state": state, details_key: details}],
        "created_at": when,
        "updated_at": when,
        "state": order_state,
        "version": version,
        "total_money": {"amount": total_cents, "currency": currency},
        "net_amount_due_money": {"amount": 0, "currency": currency},
    }
    if reference_id is not None:
        body["reference_id"] = reference_id
    if ticket_name is not None:
        body["ticket_name"] = ticket_name
    return body
