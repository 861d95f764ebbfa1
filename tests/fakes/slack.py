"""A strict loopback Slack incoming webhook (``/services/{T}/{B}/{secret}``).

Slack's OpenAPI file covers the Web API only, not incoming webhooks; the checks follow
Slack's incoming-webhook and Block Kit documentation and its 2016 changelog on webhook
errors. Errors are HTTP statuses with a plain-text body:

* an unknown team or bot id -> 404 ``no_service``; a wrong secret -> 403 ``invalid_token``;
* another method -> 405 ``invalid_method``;
* a body that is neither JSON nor a form with ``payload`` JSON, or not an object -> 400
  ``invalid_payload``; neither ``text`` nor ``blocks`` -> 400 ``no_text``;
* blocks Slack would refuse -> 400 ``invalid_blocks``: more than 50, an unknown type, a
  header that is not plain_text or over 150 characters, a section without text or
  fields or with text over 3000, more than 10 fields or one over 2000, an actions block
  with more than 25 elements, a button text over 75 or url over 3000 characters;
* ``archived = True`` -> 410 ``channel_is_archived``.

Success is ``200`` with the body ``ok``. Posted payloads are kept in ``fake.posted``.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar
from urllib.parse import parse_qs

import orjson
from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest

DEFAULT_TEAM = "T00000000"
DEFAULT_BOT = "B00000000"
DEFAULT_SECRET = "XXXXXXXXXXXXXXXXXXXXXXXX"
BLOCK_TYPES = frozenset(
    {
        "header",
        "section",
        "divider",
        "context",
        "actions",
        "image",
        "rich_text",
        "input",
        "file",
        "video",
        "markdown",
    }
)


def block_problems(blocks: Any) -> list[str]:
    """Why Slack would refuse ``blocks`` (Block Kit limits), empty when it would not."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    problems: list[str] = []
    if len(blocks) > 50:
        problems.append("more than 50 blocks")
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_TYPES:
            problems.append(f"blocks[{i}]: unknown type {kind!r}")
            continue
        text = block.get("text")
        if kind == "header":
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                problems.append(f"blocks[{i}]: a header needs plain_text")
            elif not text.get("text") or len(text["text"]) > 150:
                problems.append(f"blocks[{i}]: header text must be 1-150 characters")
        elif kind == "section":
            fields = block.get("fields")
            if text is None and not fields:
                problems.append(f"blocks[{i}]: a section needs text or fields")
            if text is not None and (
                not isinstance(text, dict)
                or text.get("type") not in ("plain_text", "mrkdwn")
                or not text.get("text")
                or len(text["text"]) > 3000
            ):
                problems.append(f"blocks[{i}]: section text must be 1-3000 characters")
            if fields is not None and (
                not isinstance(fields, list)
                or len(fields) > 10
                or any(len(str(f.get("text", ""))) > 2000 for f in fields)
            ):
                problems.append(f"blocks[{i}]: at most 10 fields of 2000 characters")
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                problems.append(f"blocks[{i}]: actions need 1-25 elements")
                continue
            for element in elements:
                if element.get("type") == "button":
                    label = (element.get("text") or {}).get("text", "")
                    if not label or len(label) > 75 or len(element.get("url", "")) > 3000:
                        problems.append(f"blocks[{i}]: button text 1-75, url <= 3000")
    return problems


class FakeSlack(FakeServer):
    name: ClassVar[str] = "slack"

    def __init__(
        self,
        *,
        team_id: str = DEFAULT_TEAM,
        bot_id: str = DEFAULT_BOT,
        secret: str = DEFAULT_SECRET,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.team_id = team_id
        self.bot_id = bot_id
        self.secret = secret
        self.archived = False
        self.posted: list[dict[str, Any]] = []

    @property
    def webhook_path(self) -> str:
        return f"/services/{self.team_id}/{self.bot_id}/{self.secret}"

    @property
    def webhook_url(self) -> str:
        return self.base_url + self.webhook_path

    def add_routes(self) -> None:
        self.route("*", "/services/{team}/{bot}/{secret}", self.incoming)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if message is None:
            message = {
                400: "invalid_payload",
                403: "action_prohibited",
                404: "no_service",
                410: "channel_is_archived",
                429: "rate_limited",
            }.get(status, "rollup_error" if status >= 500 else "invalid_payload")
        return web.Response(status=status, text=message)

    async def _unmatched(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return self.error_response(404, "no_service")

    async def incoming(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        info = request.match_info
        if info["team"] != self.team_id or info["bot"] != self.bot_id:
            return self.error_response(404, "no_service")
        if not secrets.compare_digest(info["secret"], self.secret):
            return self.error_response(403, "invalid_token")
        if request.method != "POST":
            return self.error_response(405, "invalid_method")
        payload: Any = None
        if rec.content_type == "application/json":
            payload = rec.fields
        elif rec.content_type == "application/x-www-form-urlencoded":
            raw = parse_qs(rec.body.decode("utf-8", "replace")).get("payload", [""])[0]
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError:
                payload = None
        if not isinstance(payload, dict):
            return self.error_response(400, "invalid_payload")
        if not payload.get("text") and not payload.get("blocks"):
            return self.error_response(400, "no_text")
        if "blocks" in payload and block_problems(payload["blocks"]):
            return self.error_response(400, "invalid_blocks")
        if self.archived:
            return self.error_response(410, "channel_is_archived")
        self.posted.append(payload)
        return web.Response(status=200, text="ok", content_type="text/html")
