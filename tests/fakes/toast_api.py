"""A loopback Toast API: machine-client login and ``GET /orders/v2/orders/{guid}``.

Checked as Toast checks them (doc.toasttab.com, authentication and orders API):

* ``POST /authentication/v1/authentication/login`` with JSON ``clientId``,
  ``clientSecret`` and ``userAccessType: TOAST_MACHINE_CLIENT`` -> ``{"token":
  {"tokenType": "Bearer", "accessToken", "expiresIn"}, "status": "SUCCESS"}``; wrong
  credentials -> 401.
* ``GET /orders/v2/orders/{guid}`` needs ``Authorization: Bearer <a token this fake
  issued, or static_token>`` (else 401) and ``Toast-Restaurant-External-ID`` naming the
  restaurant that owns the order (missing -> 400; another restaurant -> 403); an unknown
  order -> 404. Errors use Toast's error shape (``status``, ``code``, ``message``).

Orders are added with ``add_order(restaurant_guid, order_json)``.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_CLIENT_ID = "fake-toast-client-id"
DEFAULT_CLIENT_SECRET = "fake-toast-client-secret-0001"
DEFAULT_STATIC_TOKEN = "fake-toast-static-token-0001"


class FakeToastApi(FakeServer):
    name: ClassVar[str] = "toast_api"

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        static_token: str = DEFAULT_STATIC_TOKEN,
        expires_in: int = 86400,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.client_id = client_id
        self.client_secret = client_secret
        self.static_token = static_token
        self.expires_in = expires_in
        self.tokens: set[str] = {static_token}
        self.orders: dict[str, tuple[str, dict[str, Any]]] = {}

    def add_order(self, restaurant_guid: str, order: dict[str, Any]) -> None:
        self.orders[str(order["guid"])] = (restaurant_guid.lower(), order)

    def revoke_tokens(self) -> None:
        """Forget issued tokens (as if they expired); the static one stays."""
        self.tokens = {self.static_token}

    def add_routes(self) -> None:
        self.route("POST", "/authentication/v1/authentication/login", self.login)
        self.route("GET", "/orders/v2/orders/{guid}", self.get_order)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        return json_response(
            {
                "status": status,
                "code": code if code is not None else status * 100,
                "message": message or f"HTTP {status}",
                "messageKey": None,
                "fieldName": None,
                "link": "https://doc.toasttab.com/doc/devguide/apiErrorCodes.html",
                "requestId": secrets.token_hex(8),
            },
            status,
        )

    async def login(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        body = rec.fields if isinstance(rec.fields, dict) else {}
        if rec.content_type != "application/json":
            return self.error_response(415, "Content-Type must be application/json")
        if body.get("userAccessType") != "TOAST_MACHINE_CLIENT":
            return self.error_response(400, "userAccessType must be TOAST_MACHINE_CLIENT")
        if not (
            secrets.compare_digest(str(body.get("clientId", "")), self.client_id)
            and secrets.compare_digest(str(body.get("clientSecret", "")), self.client_secret)
        ):
            return self.error_response(401, "Invalid client credentials")
        token = "fake-toast-jwt-" + secrets.token_hex(12)
        self.tokens.add(token)
        return json_response(
            {
                "token": {
                    "tokenType": "Bearer",
                    "scope": None,
                    "expiresIn": self.expires_in,
                    "accessToken": token,
                    "idToken": None,
                    "refreshToken": None,
                },
                "status": "SUCCESS",
            }
        )

    async def get_order(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            return self.error_response(401, "Access token is missing or invalid", 10002)
        restaurant = rec.headers.get("toast-restaurant-external-id", "").lower()
        if not restaurant:
            return self.error_response(400, "Missing Toast-Restaurant-External-ID header")
        found = self.orders.get(request.match_info["guid"])
        if found is None:
            return self.error_response(404, "Order not found", 10022)
        owner, order = found
        if owner != restaurant:
            return self.error_response(403, "Not authorized for this restaurant", 10003)
        return json_response(order)
