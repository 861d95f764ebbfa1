"""A strict loopback Google Chat incoming webhook (``spaces.messages.create``).

``POST /v1/spaces/{space}/messages?key=...&token=...``. Google's error shape is
``{"error": {"code", "message", "status"}}``:

* no ``key`` -> 403 PERMISSION_DENIED; a wrong key -> 400 INVALID_ARGUMENT ("API key not
  valid"); no or wrong ``token`` -> 403 PERMISSION_DENIED ("The API is called without a
  valid token"); another space -> 404 NOT_FOUND; another method -> 404 NOT_FOUND;
* a body that is not a JSON object, a field a Message does not have ("Invalid JSON
  payload received. Unknown name"), ``text`` over 4096 characters, neither ``text`` nor
  ``cardsV2``, a ``cardsV2`` entry without ``cardId`` and ``card``, a widget that is not
  exactly one known kind, a ``messageReplyOption`` outside the enum -> 400
  INVALID_ARGUMENT.

Success is ``200`` with the created Message (``name``, ``sender``, ``text``, ``thread``,
``space``, ``createTime``). A repeated ``threadKey`` lands in the same thread.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_SPACE = "AAAAfakeSpc"
DEFAULT_KEY = "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"
DEFAULT_TOKEN = "fake-chat-webhook-token-0001"
MAX_TEXT_CHARS = 4096
MESSAGE_FIELDS = frozenset(
    {
        "text",
        "cardsV2",
        "cards",
        "thread",
        "threadKey",
        "formattedText",
        "accessoryWidgets",
        "fallbackText",
        "annotations",
        "argumentText",
        "privateMessageViewer",
        "quotedMessageMetadata",
    }
)
REPLY_OPTIONS = frozenset(
    {
        "MESSAGE_REPLY_OPTION_UNSPECIFIED",
        "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD",
        "REPLY_MESSAGE_OR_FAIL",
    }
)
WIDGETS = frozenset(
    {
        "textParagraph",
        "image",
        "decoratedText",
        "buttonList",
        "textInput",
        "selectionInput",
        "dateTimePicker",
        "divider",
        "grid",
        "columns",
        "chipList",
        "carousel",
    }
)


def message_problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["Invalid JSON payload received."]
    unknown = sorted(set(body) - MESSAGE_FIELDS)
    if unknown:
        return [f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.']
    problems = []
    text = body.get("text")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT_CHARS):
        problems.append("Message text exceeds the 4096 characters limit.")
    if not text and not body.get("cardsV2") and not body.get("cards"):
        problems.append("Message cannot be empty.")
    for i, entry in enumerate(body.get("cardsV2") or []):
        if (
            not isinstance(entry, dict)
            or not entry.get("cardId")
            or not isinstance(entry.get("card"), dict)
        ):
            problems.append(f"cardsV2[{i}] needs cardId and card")
            continue
        for section in entry["card"].get("sections") or []:
            for widget in section.get("widgets") or []:
                kinds = [k for k in widget if k in WIDGETS]
                if len(kinds) != 1 or len(widget) != 1:
                    problems.append(f"cardsV2[{i}]: a widget must be exactly one known kind")
    return problems


class FakeGoogleChat(FakeServer):
    name: ClassVar[str] = "google_chat"

    def __init__(
        self,
        *,
        space: str = DEFAULT_SPACE,
        key: str = DEFAULT_KEY,
        token: str = DEFAULT_TOKEN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.space = space
        self.key = key
        self.token = token
        self.created: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, str] = {}

    def webhook_url(self, token: str | None = None) -> str:
        return (
            f"{self.base_url}/v1/spaces/{self.space}/messages"
            f"?key={self.key}&token={token or self.token}"
        )

    def add_routes(self) -> None:
        self.route("*", "/v1/spaces/{space}/messages", self.create)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        status_name = code or {
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
            429: "RESOURCE_EXHAUSTED",
            503: "UNAVAILABLE",
        }.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        body = {"error": {"code": status, "message": message or status_name, "status": status_name}}
        return json_response(body, status)

    async def _unmatched(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return self.error_response(404, "Requested entity was not found.")

    async def create(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if request.method != "POST":
            return self.error_response(404, "Requested entity was not found.")
        key = request.query.get("key")
        if not key:
            return self.error_response(
                403, "The request is missing a valid API key.", "PERMISSION_DENIED"
            )
        if not secrets.compare_digest(key, self.key):
            return self.error_response(
                400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"
            )
        if not secrets.compare_digest(request.query.get("token", ""), self.token):
            return self.error_response(
                403,
                "The API is called without a valid token. Instructions on how to use incoming "
                "webhooks can be found at https://developers.google.com/chat/how-tos/webhooks",
                "PERMISSION_DENIED",
            )
        if request.match_info["space"] != self.space:
            return self.error_response(404, "Requested entity was not found.")
        option = request.query.get("messageReplyOption")
        if option is not None and option not in REPLY_OPTIONS:
            return self.error_response(400, f"Invalid value at 'message_reply_option' ({option})")
        body = rec.fields if rec.content_type == "application/json" else None
        problems = message_problems(body)
        if problems:
            return self.error_response(400, "; ".join(problems[:3]))
        assert isinstance(body, dict)
        key_name = (body.get("thread") or {}).get("threadKey") or body.get("threadKey")
        thread = self.threads.get(key_name) if key_name else None
        if thread is None:
            thread = f"spaces/{self.space}/threads/{secrets.token_urlsafe(8)}"
            if key_name:
                self.threads[key_name] = thread
        name = f"spaces/{self.space}/messages/{secrets.token_urlsafe(8)}.{secrets.token_urlsafe(8)}"
        created = {
            "name": name,
            "sender": {
                "name": "users/114022495153014004089",
                "displayName": "Order Bell",
                "type": "BOT",
            },
            "text": body.get("text", ""),
            "cardsV2": body.get("cardsV2", []),
            "thread": {"name": thread, **({"threadKey": key_name} if key_name else {})},
            "space": {"name": f"spaces/{self.space}", "type": "ROOM"},
            "createTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        self.created[name] = created
        return json_response(created)
