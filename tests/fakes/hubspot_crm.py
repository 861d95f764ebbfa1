"""A strict loopback HubSpot CRM v3 objects API: ``PATCH /crm/v3/objects/{type}/{id}``.

Checks follow HubSpot's CRM objects reference. Errors are ``{"status": "error",
"message", "correlationId", "category"}``:

* no or wrong token -> 401 ``INVALID_AUTHENTICATION``;
* an object type the fake does not serve -> 400 ``VALIDATION_ERROR``; a record it does
  not hold -> 404 ``OBJECT_NOT_FOUND``; another method -> 405;
* a body that is not ``{"properties": {name: string}}`` -> 400 ``VALIDATION_ERROR``; a
  property the portal does not define -> 400 ``VALIDATION_ERROR`` (PROPERTY_DOESNT_EXIST);
  a value outside an enumeration property's options -> 400 ``VALIDATION_ERROR``
  (INVALID_OPTION).

Success is ``200`` with the record (``id``, ``properties``, ``createdAt``, ``updatedAt``,
``archived``). ``fake.records[type][id]`` holds the properties.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_TOKEN = "pat-na1-00000000-fake-hubspot-token-0001"
ORDER_STATUS_OPTIONS = frozenset(
    {"placed", "confirmed", "in_kitchen", "ready", "out_for_delivery", "completed", "cancelled"}
)


class FakeHubSpotCrm(FakeServer):
    name: ClassVar[str] = "hubspot_crm"

    def __init__(self, *, access_token: str = DEFAULT_TOKEN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token
        self.records: dict[str, dict[str, dict[str, str]]] = {
            "contacts": {"501": {"email": "guest@example.com"}},
            "deals": {"9001": {"dealname": "Order #123"}},
        }
        #: property name -> enumeration options (None: free text), per object type
        self.properties: dict[str, dict[str, frozenset[str] | None]] = {
            "contacts": {"order_status": ORDER_STATUS_OPTIONS, "email": None},
            "deals": {"order_status": ORDER_STATUS_OPTIONS, "dealname": None, "dealstage": None},
        }

    def add_routes(self) -> None:
        self.route("*", "/crm/v3/objects/{object_type}/{record_id}", self.update)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        category = code or {
            400: "VALIDATION_ERROR",
            401: "INVALID_AUTHENTICATION",
            404: "OBJECT_NOT_FOUND",
            429: "RATE_LIMITS",
        }.get(status, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")
        body = {
            "status": "error",
            "message": message or category,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        }
        return json_response(body, status)

    async def update(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token, self.access_token):
            return self.error_response(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication",
                "INVALID_AUTHENTICATION",
            )
        object_type = request.match_info["object_type"]
        if object_type not in self.records:
            return self.error_response(400, f"Unable to infer object type from: {object_type}")
        if request.method != "PATCH":
            return self.error_response(405, "Method Not Allowed", "VALIDATION_ERROR")
        body = rec.fields if rec.content_type == "application/json" else None
        if (
            not isinstance(body, dict)
            or set(body) != {"properties"}
            or not isinstance(body["properties"], dict)
        ):
            return self.error_response(400, 'Invalid input JSON: expected {"properties": {...}}')
        defined = self.properties[object_type]
        for name, value in body["properties"].items():
            if name not in defined:
                return self.error_response(
                    400,
                    f'Property values were not valid: [{{"name":"{name}","error":"PROPERTY_DOESNT_EXIST"}}]',
                )
            if not isinstance(value, str):
                return self.error_response(400, f"Property {name} must be a string")
            options = defined[name]
            if options is not None and value not in options:
                return self.error_response(
                    400,
                    f'Property values were not valid: [{{"name":"{name}","error":"INVALID_OPTION"}}]',
                )
        record_id = request.match_info["record_id"]
        record = self.records[object_type].get(record_id)
        if record is None:
            return self.error_response(404, f"resource not found: {record_id}", "OBJECT_NOT_FOUND")
        record.update(body["properties"])
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return json_response(
            {
                "id": record_id,
                "properties": {**record, "hs_lastmodifieddate": now, "hs_object_id": record_id},
                "createdAt": "2026-01-01T00:00:00Z",
                "updatedAt": now,
                "archived": False,
            }
        )
