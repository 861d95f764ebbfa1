"""A strict loopback MessageBird Conversations API and Bird Channels API (SMS).

Both need ``Authorization: AccessKey <key>`` and a JSON object body.

* ``POST /v1/send`` (MessageBird Conversations): ``to``, ``from`` (a channel id this fake
  knows), ``type`` and ``content`` required; ``type: text`` needs ``content.text``;
  ``reportUrl`` must be an http(s) URL; an unlisted top-level field is refused. Errors are
  ``{"errors": [{"code", "description", "parameter"}]}``: 401 code 1001 (the documented
  invalid-credential error), 404 code 20, 400/422 code 21 or 9. Success: ``202`` with
  ``{"id": <32 hex>, "status": "accepted", "fallback": null}``.
* ``POST /workspaces/{workspaceId}/channels/{channelId}/messages`` (Bird): ``receiver.
  contacts`` with at least one ``identifierValue`` (E.164 for SMS; ``identifierKey``, when
  given, ``phonenumber``), exactly one of ``body`` and ``template``; a ``text`` body needs
  ``body.text.text``. Errors are ``{"code", "message"}`` (the exact codes are not
  documented publicly; these follow the HTTP meaning: Unauthorized, NotFound,
  InvalidPayload). Success: ``202`` with the message object (``id`` a UUID, ``status``
  ``accepted``).
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_ACCESS_KEY = "fake-messagebird-access-key-0001"
DEFAULT_CHANNEL_ID = "619747f69cf940a98fb443140ce9aed2"
DEFAULT_WORKSPACE_ID = "8c6d9a7e-1f2b-4c3d-9e8f-0a1b2c3d4e5f"
DEFAULT_BIRD_CHANNEL_ID = "2f9b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
E164_RE = re.compile(r"^\+?[1-9]\d{1,14}$")
CONVERSATION_FIELDS = frozenset(
    {"to", "from", "type", "content", "reportUrl", "source", "tag", "fallback", "ttl"}
)
MESSAGE_TYPES = frozenset(
    {"text", "image", "video", "audio", "file", "location", "hsm", "interactive"}
)
BIRD_FIELDS = frozenset({"receiver", "body", "template", "reference", "meta", "sender", "tags"})


class FakeMessageBird(FakeServer):
    name: ClassVar[str] = "messagebird"

    def __init__(
        self,
        *,
        access_key: str = DEFAULT_ACCESS_KEY,
        channel_id: str = DEFAULT_CHANNEL_ID,
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        bird_channel_id: str = DEFAULT_BIRD_CHANNEL_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.access_key = access_key
        self.channel_id = channel_id
        self.workspace_id = workspace_id
        self.bird_channel_id = bird_channel_id
        self.messages: dict[str, dict[str, Any]] = {}

    def add_routes(self) -> None:
        self.route("*", "/v1/send", self.conversations_send)
        self.route("*", "/workspaces/{workspace_id}/channels/{channel_id}/messages", self.bird_send)

    # ------------------------------------------------------------------ errors

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if code is None:
            code = {401: 1001, 404: 20, 429: 29}.get(status, 99 if status >= 500 else 21)
        if message is None:
            message = {
                401: "You are requesting with an invalid credential.",
                404: "Not found",
                405: "Method not allowed",
                429: "Too many requests",
            }.get(status, "Internal error" if status >= 500 else "Bad request")
        return self.conversations_error(status, code, message)

    @staticmethod
    def conversations_error(
        status: int, code: int, description: str, parameter: str | None = None
    ) -> web.Response:
        errors = [{"code": code, "description": description, "parameter": parameter}]
        return json_response({"errors": errors}, status)

    @staticmethod
    def bird_error(status: int, code: str, message: str) -> web.Response:
        return json_response({"code": code, "message": message}, status)

    def _authorized(self, rec: RecordedRequest) -> bool:
        scheme, _, key = rec.headers.get("authorization", "").partition(" ")
        return scheme == "AccessKey" and secrets.compare_digest(key, self.access_key)

    # ------------------------------------------------------------------ Conversations

    async def conversations_send(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if not self._authorized(rec):
            return self.error_response(401)
        if request.method != "POST":
            return self.error_response(405, code=21)
        body = rec.fields
        if rec.content_type != "application/json" or not isinstance(body, dict):
            return self.conversations_error(400, 21, "Request body must be a JSON object")
        unknown = sorted(set(body) - CONVERSATION_FIELDS)
        if unknown:
            return self.conversations_error(422, 21, "unknown parameter", unknown[0])
        for name in ("to", "from", "type", "content"):
            if not body.get(name):
                return self.conversations_error(422, 9, f"{name} is required", name)
        if not isinstance(body["to"], str) or not E164_RE.match(body["to"]):
            return self.conversations_error(422, 21, "to is not a valid phone number", "to")
        if body["from"] != self.channel_id:
            return self.conversations_error(404, 20, "channel not found", "from")
        if body["type"] not in MESSAGE_TYPES:
            return self.conversations_error(422, 21, "type is invalid", "type")
        content = body["content"]
        if not isinstance(content, dict):
            return self.conversations_error(422, 21, "content must be an object", "content")
        if body["type"] == "text" and (
            not isinstance(content.get("text"), str) or not content["text"]
        ):
            return self.conversations_error(422, 9, "content.text is required", "content.text")
        report = body.get("reportUrl")
        if report is not None and (
            not isinstance(report, str) or not re.match(r"^https?://[^/\s]+", report)
        ):
            return self.conversations_error(422, 21, "reportUrl is not a valid URL", "reportUrl")
        message_id = secrets.token_hex(16)
        self.messages[message_id] = body
        return json_response({"id": message_id, "status": "accepted", "fallback": None}, 202)

    # ------------------------------------------------------------------ Bird

    async def bird_send(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if not self._authorized(rec):
            return self.bird_error(401, "Unauthorized", "invalid access key")
        if request.method != "POST":
            return self.bird_error(405, "MethodNotAllowed", "method not allowed")
        if (
            request.match_info["workspace_id"] != self.workspace_id
            or request.match_info["channel_id"] != self.bird_channel_id
        ):
            return self.bird_error(404, "NotFound", "channel not found")
        body = rec.fields
        if rec.content_type != "application/json" or not isinstance(body, dict):
            return self.bird_error(400, "InvalidPayload", "request body must be a JSON object")
        problem = self._bird_problem(body)
        if problem:
            return self.bird_error(422, "InvalidPayload", problem)
        message_id = str(uuid.uuid4())
        message = {
            "id": message_id,
            "channelId": self.bird_channel_id,
            "receiver": body["receiver"],
            "body": body.get("body"),
            "reference": body.get("reference"),
            "status": "accepted",
        }
        self.messages[message_id] = body
        return json_response(message, 202)

    @staticmethod
    def _bird_problem(body: dict[str, Any]) -> str | None:
        unknown = sorted(set(body) - BIRD_FIELDS)
        if unknown:
            return f"unknown field {unknown[0]}"
        receiver = body.get("receiver")
        contacts = receiver.get("contacts") if isinstance(receiver, dict) else None
        if not isinstance(contacts, list) or not contacts:
            return "receiver.contacts must list at least one contact"
        for contact in contacts:
            if not isinstance(contact, dict):
                return "receiver.contacts entries must be objects"
            if contact.get("identifierKey", "phonenumber") != "phonenumber":
                return "identifierKey must be phonenumber on an SMS channel"
            value = contact.get("identifierValue")
            if not isinstance(value, str) or not re.match(r"^\+[1-9]\d{1,14}$", value):
                return "identifierValue must be an E.164 phone number"
        if ("body" in body) == ("template" in body):
            return "exactly one of body and template is required"
        if "reference" in body and not isinstance(body["reference"], str):
            return "reference must be a string"
        message = body.get("body")
        if message is not None:
            if not isinstance(message, dict) or message.get("type") != "text":
                return "body.type must be text on this channel"
            text = message.get("text")
            if not isinstance(text, dict) or not isinstance(text.get("text"), str):
                return "body.text.text is required"
            if not text["text"]:
                return "body.text.text must not be empty"
        return None
