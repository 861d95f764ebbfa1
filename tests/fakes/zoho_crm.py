"""A strict loopback Zoho CRM record update: ``PUT /crm/v{2..8}/{module}/{record_id}``.

Checks follow Zoho's "Update Specific Record" reference (v2 to v8). Top-level errors are
``{"code", "details", "message", "status": "error"}``; record-level ones sit in
``data[0]``:

* ``Authorization`` not ``Zoho-oauthtoken <token>``, or a wrong token -> 401
  ``INVALID_TOKEN`` ("invalid oauth token"); an API version outside 2-8 -> 400
  ``INVALID_URL_PATTERN``; an unknown module -> 400 ``INVALID_MODULE``; another method
  -> 405 ``METHOD_NOT_ALLOWED``;
* a body that is not ``{"data": [one object], "trigger"?: [...]}`` -> 400 ``INVALID_DATA``
  (top level); ``trigger`` entries outside workflow/approval/blueprint -> 400
  ``INVALID_DATA``;
* an unknown record -> 400 with ``data[0]`` ``INVALID_DATA`` ("the related id given
  seems to be invalid"); a field the module does not have -> 400 with ``data[0]``
  ``INVALID_DATA``; a value outside a pick list -> 400 with ``data[0]`` ``INVALID_DATA``.

Success is ``200`` with ``data[0] = {"code": "SUCCESS", "details": {"Modified_Time",
"Modified_By", "Created_Time", "id", "Created_By"}, "message": "record updated",
"status": "success"}``.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_TOKEN = "1000.fakezohoaccesstoken.0001"
STAGES = frozenset(
    {
        "Qualification",
        "Confirmed",
        "In Kitchen",
        "Ready",
        "Out for Delivery",
        "Delivered",
        "Closed Won",
        "Closed Lost",
    }
)


class FakeZohoCrm(FakeServer):
    name: ClassVar[str] = "zoho_crm"

    def __init__(self, *, access_token: str = DEFAULT_TOKEN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token
        self.records: dict[str, dict[str, dict[str, Any]]] = {
            "Deals": {"4876876000000624001": {"Deal_Name": "Order #123", "Stage": "Confirmed"}},
            "Leads": {"4876876000000333001": {"Last_Name": "Guest"}},
        }
        #: field -> pick-list values (None: free text), per module
        self.fields: dict[str, dict[str, frozenset[str] | None]] = {
            "Deals": {"Stage": STAGES, "Deal_Name": None, "Description": None},
            "Leads": {"Lead_Status": None, "Last_Name": None},
        }

    def add_routes(self) -> None:
        self.route("*", "/crm/v{version}/{module}/{record_id}", self.update)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        code = code or {
            400: "INVALID_DATA",
            401: "INVALID_TOKEN",
            404: "INVALID_URL_PATTERN",
            429: "TOO_MANY_REQUESTS",
        }.get(status, "INTERNAL_ERROR" if status >= 500 else "INVALID_REQUEST")
        body = {
            "code": code,
            "details": {},
            "message": message or code.lower().replace("_", " "),
            "status": "error",
        }
        return json_response(body, status)

    def _record_error(self, message: str, details: dict[str, Any]) -> web.Response:
        item = {"code": "INVALID_DATA", "details": details, "message": message, "status": "error"}
        return json_response({"data": [item]}, 400)

    async def update(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        if scheme != "Zoho-oauthtoken" or not secrets.compare_digest(token, self.access_token):
            return self.error_response(401, "invalid oauth token", "INVALID_TOKEN")
        version = request.match_info["version"]
        if not re.fullmatch(r"[2-8]", version):
            return self.error_response(
                400,
                "Please check if the URL trying to access is a correct one",
                "INVALID_URL_PATTERN",
            )
        module = request.match_info["module"]
        if module not in self.records:
            return self.error_response(
                400, "the module name given seems to be invalid", "INVALID_MODULE"
            )
        if request.method != "PUT":
            return self.error_response(
                405, "The http request method type is not a valid one", "METHOD_NOT_ALLOWED"
            )
        body = rec.fields if rec.content_type == "application/json" else None
        if (
            not isinstance(body, dict)
            or set(body) - {"data", "trigger"}
            or not isinstance(body.get("data"), list)
            or len(body["data"]) != 1
            or not isinstance(body["data"][0], dict)
        ):
            return self.error_response(400, 'body must be {"data": [ {record} ]}', "INVALID_DATA")
        trigger = body.get("trigger", [])
        if not isinstance(trigger, list) or set(trigger) - {"workflow", "approval", "blueprint"}:
            return self.error_response(400, "invalid data for trigger", "INVALID_DATA")
        record_id = request.match_info["record_id"]
        record = self.records[module].get(record_id)
        if record is None:
            return self._record_error("the related id given seems to be invalid", {"id": record_id})
        changes = body["data"][0]
        for name, value in changes.items():
            if name not in self.fields[module]:
                return self._record_error("invalid data", {"api_name": name})
            options = self.fields[module][name]
            if options is not None and value not in options:
                return self._record_error(
                    "invalid data", {"api_name": name, "expected_data_type": "picklist"}
                )
        record.update(changes)
        now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
        user = {"name": "Order Bell", "id": "4876876000000225013"}
        return json_response(
            {
                "data": [
                    {
                        "code": "SUCCESS",
                        "details": {
                            "Modified_Time": now,
                            "Modified_By": user,
                            "Created_Time": "2026-01-01T10:00:00+00:00",
                            "id": record_id,
                            "Created_By": user,
                        },
                        "message": "record updated",
                        "status": "success",
                    }
                ]
            }
        )
