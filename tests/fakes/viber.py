"""A strict loopback Viber REST Bot API ``/pa/send_message``.

Viber publishes no machine-readable spec; the checks follow the REST Bot API reference
and the official Python SDK (``viber-bot-python``: the token in the body as
``auth_token``; the docs: the ``X-Viber-Auth-Token`` header; both are accepted).

Like Viber, the fake answers HTTP 200 with a JSON ``status`` for every logical error:

* no or wrong token -> 2 invalidAuthToken; a body that is not a JSON object -> 3 badData;
* missing ``receiver``, ``type``, ``sender.name`` or (for text) ``text`` -> 4 missingData;
* ``type`` other than text, ``sender.name`` over 28 characters, ``text`` over 7000
  characters, ``tracking_data`` over 4096, an unknown field -> 3 badData;
* a receiver in ``not_registered`` -> 5; one not in ``subscribers`` (when that set is
  given) -> 6 receiverNotSubscribed; ``webhook_set = False`` -> 10 webhookNotSet.

Another path answers 404 and another method 405 (HTTP errors, with a plain body).
Success is ``{"status": 0, "status_message": "ok", "message_token": <int64>,
"chat_hostname"}``.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_TOKEN = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51f"
MAX_TEXT_CHARS = 7000
FIELDS = frozenset(
    {
        "receiver",
        "min_api_version",
        "sender",
        "tracking_data",
        "type",
        "text",
        "auth_token",
        "keyboard",
    }
)
NAMES = {
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "receiverNotSubscribed",
    10: "webhookNotSet",
    12: "tooManyRequests",
}


class FakeViber(FakeServer):
    name: ClassVar[str] = "viber"

    def __init__(self, *, auth_token: str = DEFAULT_TOKEN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.auth_token = auth_token
        #: subscribed user ids; None accepts any receiver
        self.subscribers: set[str] | None = None
        self.not_registered: set[str] = set()
        self.webhook_set = True
        self.sent: dict[str, dict[str, Any]] = {}

    def add_routes(self) -> None:
        self.route("*", "/pa/send_message", self.send_message)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if status == 429:
            return json_response({"status": 12, "status_message": "tooManyRequests"}, status)
        return web.Response(status=status, text=message or f"HTTP {status}")

    def status(self, code: int, message: str | None = None) -> web.Response:
        """A logical error: HTTP 200 with a non-zero status, as Viber answers."""
        return json_response({"status": code, "status_message": message or NAMES[code]})

    async def _unmatched(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return web.Response(status=404, text="Not Found")

    async def send_message(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if request.method != "POST":
            return web.Response(status=405, text="Method Not Allowed")
        body = rec.fields if rec.content_type == "application/json" else None
        token = rec.headers.get("x-viber-auth-token", "")
        if not token and isinstance(body, dict):
            token = str(body.get("auth_token") or "")
        if not secrets.compare_digest(token, self.auth_token):
            return self.status(2)
        if not isinstance(body, dict):
            return self.status(3)
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return self.status(3, f"unknown field {unknown[0]}")
        sender = body.get("sender")
        if not body.get("receiver") or not body.get("type"):
            return self.status(4)
        if not isinstance(sender, dict) or not sender.get("name"):
            return self.status(4, "sender.name is required")
        if len(str(sender["name"])) > 28:
            return self.status(3, "sender.name is longer than 28 characters")
        if body["type"] != "text":
            return self.status(3, f"the fake sends no {body['type']}")
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return self.status(4, "text is required")
        if len(text) > MAX_TEXT_CHARS:
            return self.status(3, "text is longer than 7000 characters")
        if len(str(body.get("tracking_data") or "")) > 4096:
            return self.status(3, "tracking_data is longer than 4096 characters")
        receiver = str(body["receiver"])
        if receiver in self.not_registered:
            return self.status(5)
        if self.subscribers is not None and receiver not in self.subscribers:
            return self.status(6)
        if not self.webhook_set:
            return self.status(10)
        token_id = secrets.randbits(62) + 10**17
        self.sent[str(token_id)] = body
        return json_response(
            {
                "status": 0,
                "status_message": "ok",
                "message_token": token_id,
                "chat_hostname": "SN-CHAT-05_",
            }
        )
