"""A loopback Clover REST API: ``GET /v3/merchants/{mId}/orders/{orderId}``.

Checked as Clover checks it (docs.clover.com REST API): ``Authorization: Bearer <the
merchant's token>`` (missing or another merchant's -> 401 ``{"message": "401
Unauthorized"}``), an unknown order -> 404 ``{"message": "Not Found"}``, more than three
``expand`` fields -> 400 (Clover asks for at most three). Expanded fields are returned
as Clover returns them (``{"elements": [...]}``); others are left out of the answer.

Orders are added with ``add_order(merchant_id, order_json)`` (customers given with their
``phoneNumbers`` / ``emailAddresses`` lists) and changed with ``update_order``.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

MAX_EXPANSIONS = 3
EXPANDABLE = {"customers", "orderType", "lineItems", "payments", "discounts", "employee"}


class FakeCloverApi(FakeServer):
    name: ClassVar[str] = "clover_api"

    def __init__(self, *, tokens: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: merchant id -> its OAuth token
        self.tokens: dict[str, str] = dict(tokens or {})
        self.orders: dict[tuple[str, str], dict[str, Any]] = {}

    def add_merchant(self, merchant_id: str, token: str | None = None) -> str:
        token = token or "fake-clover-" + secrets.token_hex(10)
        self.tokens[merchant_id] = token
        return token

    def add_order(self, merchant_id: str, order: dict[str, Any]) -> None:
        self.orders[(merchant_id, str(order["id"]))] = copy.deepcopy(order)

    def update_order(self, merchant_id: str, order_id: str, **fields: Any) -> None:
        self.orders[(merchant_id, order_id)].update(fields)

    def add_routes(self) -> None:
        self.route("GET", "/v3/merchants/{mId}/orders/{orderId}", self.get_order)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        text = message or {401: "401 Unauthorized", 404: "Not Found"}.get(status, "Error")
        return json_response({"message": text}, status)

    async def get_order(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        mid, oid = request.match_info["mId"], request.match_info["orderId"]
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        expected = self.tokens.get(mid)
        if (
            scheme.lower() != "bearer"
            or expected is None
            or not secrets.compare_digest(token, expected)
        ):
            return self.error_response(401)
        expand = [f for f in request.query.get("expand", "").split(",") if f]
        if len(expand) > MAX_EXPANSIONS:
            return self.error_response(400, f"At most {MAX_EXPANSIONS} expansions per call")
        roots = {f.split(".", 1)[0] for f in expand}
        if unknown := roots - EXPANDABLE:
            return self.error_response(400, f"Unknown expansion {sorted(unknown)[0]}")
        order = self.orders.get((mid, oid))
        if order is None:
            return self.error_response(404)
        answer = {k: v for k, v in order.items() if k not in EXPANDABLE}
        for root in roots:
            value = order.get(root)
            if value is None:
                continue
            if root == "customers":
                answer[root] = {"elements": [self._customer(c, expand) for c in value]}
            elif isinstance(value, list):
                answer[root] = {"elements": value}
            else:
                answer[root] = value
        return json_response(answer)

    @staticmethod
    def _customer(customer: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        out = {k: v for k, v in customer.items() if k not in ("phoneNumbers", "emailAddresses")}
        for nested in ("phoneNumbers", "emailAddresses"):
            if f"customers.{nested}" in expand:
                out[nested] = {"elements": customer.get(nested, [])}
        return out
