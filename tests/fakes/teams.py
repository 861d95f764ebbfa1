"""A strict loopback Teams Workflows webhook (Logic Apps manual trigger) and, for the
legacy format, an Office 365 connector URL.

Workflows: ``POST /workflows/{id}/triggers/manual/paths/invoke?api-version=...&sp=...
&sv=1.0&sig=...``. Logic Apps errors are ``{"error": {"code", "message"}}``:

* no ``sig`` -> 401 ``DirectApiAuthorizationRequired``; a wrong one -> 401
  ``DirectApiInvalidAuthorizationSignature``; another workflow id -> 404
  ``WorkflowNotFound``; no ``api-version`` -> 400 ``MissingApiVersionParameter``;
* another method -> 405 ``TriggerRequestMethodNotValid``; a body over 28 KB -> 413
  ``RequestEntityTooLarge``; a body that is not JSON -> 400 ``InvalidRequestContent``;
* what the "Send webhook alerts to a channel" template could not post -> 400
  ``TriggerInputSchemaMismatch``: ``type`` not ``message``, no ``attachments``, an
  attachment that is not an Adaptive Card, a card without ``type: AdaptiveCard``, a
  ``version`` above 1.5, an empty ``body``, or a body element without ``type``. (The
  real trigger answers 202 and the flow run fails later; the fake says so at once.)

Success is ``202`` with no body. Legacy connector: ``POST /webhookb2/{...}`` takes a
MessageCard (``@type: MessageCard`` and ``text`` or ``sections``) and answers ``200``
with the body ``1``; anything else -> 400 with a plain-text reason.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_WORKFLOW = "0123456789abcdef0123456789abcdef"
DEFAULT_SIG = "fakeSigAbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
MAX_BYTES = 28 * 1024
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


def card_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["the body must be a JSON object"]
    if payload.get("type") != "message":
        return ["type must be message"]
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return ["attachments must be a non-empty array"]
    problems = []
    for i, att in enumerate(attachments):
        if not isinstance(att, dict) or att.get("contentType") != ADAPTIVE_CARD:
            problems.append(f"attachments[{i}].contentType must be {ADAPTIVE_CARD}")
            continue
        content = att.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
            problems.append(f"attachments[{i}].content must be an AdaptiveCard")
            continue
        version = str(content.get("version", ""))
        try:
            major, minor = (int(p) for p in version.split("."))
        except ValueError:
            problems.append(f"attachments[{i}].content.version is not a version")
            continue
        if (major, minor) > (1, 5):
            problems.append("Teams renders Adaptive Cards up to version 1.5")
        body = content.get("body")
        if not isinstance(body, list) or not body:
            problems.append(f"attachments[{i}].content.body must be a non-empty array")
        elif any(not isinstance(el, dict) or not el.get("type") for el in body):
            problems.append(f"attachments[{i}].content.body elements need a type")
    return problems


class FakeTeams(FakeServer):
    name: ClassVar[str] = "teams"

    def __init__(
        self, *, workflow_id: str = DEFAULT_WORKFLOW, sig: str = DEFAULT_SIG, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.sig = sig
        self.posted: list[dict[str, Any]] = []

    def workflow_url(self, sig: str | None = None) -> str:
        return (
            f"{self.base_url}/workflows/{self.workflow_id}/triggers/manual/paths/invoke"
            f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig or self.sig}"
        )

    @property
    def legacy_url(self) -> str:
        return f"{self.base_url}/webhookb2/{self.workflow_id}@tenant/IncomingWebhook/abc/{self.sig}"

    def add_routes(self) -> None:
        self.route("*", "/workflows/{workflow}/triggers/manual/paths/invoke", self.invoke)
        self.route("*", "/webhookb2/{tail:.*}", self.legacy)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if code is None:
            code = {
                401: "DirectApiAuthorizationRequired",
                404: "WorkflowNotFound",
                413: "RequestEntityTooLarge",
                429: "WorkflowRequestsThrottled",
            }.get(status, "ServiceUnavailable" if status >= 500 else "BadRequest")
        return json_response({"error": {"code": code, "message": message or code}}, status)

    async def invoke(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if request.match_info["workflow"] != self.workflow_id:
            return self.error_response(404, "The workflow was not found.", "WorkflowNotFound")
        sig = request.query.get("sig")
        if not sig:
            return self.error_response(
                401,
                "The request must be authenticated only by Shared Access scheme.",
                "DirectApiAuthorizationRequired",
            )
        if not secrets.compare_digest(sig, self.sig):
            return self.error_response(
                401,
                "The provided authentication token is not valid.",
                "DirectApiInvalidAuthorizationSignature",
            )
        if "api-version" not in request.query:
            return self.error_response(
                400, "The api-version query parameter is required.", "MissingApiVersionParameter"
            )
        if request.method != "POST":
            return self.error_response(
                405, "The trigger accepts POST requests only.", "TriggerRequestMethodNotValid"
            )
        if len(rec.body) > MAX_BYTES:
            return self.error_response(413, "Request Entity Too Large", "RequestEntityTooLarge")
        if rec.content_type != "application/json" or rec.fields is None:
            return self.error_response(
                400, "The request content is not valid JSON.", "InvalidRequestContent"
            )
        problems = card_problems(rec.fields)
        if problems:
            return self.error_response(400, "; ".join(problems), "TriggerInputSchemaMismatch")
        self.posted.append(rec.fields)
        return web.Response(status=202)

    async def legacy(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if not rec.path.endswith("/" + self.sig):
            return web.Response(status=400, text="Invalid webhook URL")
        if request.method != "POST":
            return web.Response(status=405, text="Method Not Allowed")
        card = rec.fields if rec.content_type == "application/json" else None
        if not isinstance(card, dict) or card.get("@type") != "MessageCard":
            return web.Response(
                status=400, text="Bad payload received by generic incoming webhook."
            )
        if not card.get("text") and not card.get("sections"):
            return web.Response(status=400, text="Summary or Text is required.")
        self.posted.append(card)
        return web.Response(status=200, text="1")
