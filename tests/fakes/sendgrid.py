"""A strict loopback SendGrid Mail Send v3, checked against SendGrid's own spec.

``POST /v3/mail/send`` with ``Authorization: Bearer <key>`` and a JSON body validated
against the spec's request schema (``jsonschema``), then against the rules SendGrid
documents on its mail-send errors page: at least one personalization, each with at
least one ``to``; at most 1000 recipients; valid addresses; a subject unless a template
or every personalization has one; content (unless a template) with text/plain first,
then text/html; custom_args and header values are strings; no reserved header.
Errors are ``{"errors": [{"message", "field", "help"}]}``: 401 for a missing or wrong
key, 405 for another method, 413 over 30 MB, 400 for everything else.

Success is ``202 Accepted`` with an empty body and an ``X-Message-Id`` header (``200``
in sandbox mode, as SendGrid does).
"""

from __future__ import annotations

import re
import secrets
from functools import cache
from typing import Any, ClassVar

from aiohttp import web
from jsonschema import Draft202012Validator

from tests.fakes.harness import FakeServer, RecordedRequest, json_response
from tests.fakes.specs import request_schema

SPEC_FILE = "sendgrid_mail_v3.json"
MAIL_SEND_PATH = "/v3/mail/send"
DEFAULT_API_KEY = "SG.fake-key-id.fake-key-secret-0001"
MAX_BYTES = 30 * 1024 * 1024
MAX_RECIPIENTS = 1000
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)


@cache
def mail_send_validator() -> Draft202012Validator:
    """A validator for the Mail Send body, built from SendGrid's spec once per process."""
    schema = request_schema(SPEC_FILE, MAIL_SEND_PATH, "post", "application/json")
    return Draft202012Validator(schema)


Problem = tuple[str, str | None]  # (message, field)


def mail_problems(body: Any) -> list[Problem]:
    """Why SendGrid would refuse ``body`` (empty when it would accept it)."""
    if not isinstance(body, dict):
        return [("Bad Request", None)]
    problems: list[Problem] = [
        (error.message, ".".join(str(p) for p in error.absolute_path) or None)
        for error in mail_send_validator().iter_errors(body)
    ]
    if problems:
        return problems

    personalizations = body["personalizations"]
    if not personalizations:
        problems.append(("You must have at least one personalization.", "personalizations"))
    recipients = 0
    for i, person in enumerate(personalizations):
        if not person.get("to"):
            problems.append(
                (
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            for j, address in enumerate(person.get(kind, [])):
                recipients += 1
                email = address.get("email", "")
                if not EMAIL_RE.match(email):
                    problems.append(
                        (
                            "Does not contain a valid address.",
                            f"personalizations.{i}.{kind}.{j}.email",
                        )
                    )
                if email.lower() in seen:
                    problems.append(
                        (
                            "Each email address in the personalization block should be unique "
                            "between to, cc, and bcc.",
                            f"personalizations.{i}",
                        )
                    )
                seen.add(email.lower())
        for key, value in (person.get("custom_args") or {}).items():
            if not isinstance(value, str):
                problems.append(
                    (
                        f"Custom args values must be strings ({key}).",
                        f"personalizations.{i}.custom_args",
                    )
                )
        problems.extend(_header_problems(person.get("headers"), f"personalizations.{i}.headers"))
    if recipients > MAX_RECIPIENTS:
        problems.append(
            (
                "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
                "personalizations",
            )
        )

    if not EMAIL_RE.match(body["from"].get("email", "")):
        problems.append(
            (
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.",
                "from.email",
            )
        )
    if body.get("reply_to") and not EMAIL_RE.match(body["reply_to"].get("email", "")):
        problems.append(("Does not contain a valid address.", "reply_to.email"))

    templated = bool(body.get("template_id"))
    if not templated and not body.get("subject"):
        if not personalizations or not all(p.get("subject") for p in personalizations):
            problems.append(
                (
                    "The subject is required. You can get around this requirement if you use a "
                    "template with a subject defined or if every personalization has a subject "
                    "defined.",
                    "subject",
                )
            )
    content = body.get("content") or []
    if not templated and not content:
        problems.append(
            (
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block.",
                "content",
            )
        )
    types = [item["type"] for item in content]
    if "text/plain" in types and types.index("text/plain") != 0:
        problems.append(("If present, text/plain must be first.", "content"))
    if "text/html" in types and types.index("text/html") != ("text/plain" in types):
        problems.append(("text/html must follow text/plain, before any other type.", "content"))
    problems.extend(_header_problems(body.get("headers"), "headers"))
    return problems


def _header_problems(headers: Any, where: str) -> list[Problem]:
    problems: list[Problem] = []
    for name, value in (headers or {}).items():
        if name.lower() in RESERVED_HEADERS:
            problems.append((f"The header {name} is reserved and cannot be set.", where))
        if not isinstance(value, str):
            problems.append((f"Header values must be strings ({name}).", where))
    return problems


class FakeSendGrid(FakeServer):
    name: ClassVar[str] = "sendgrid"

    def __init__(self, *, api_key: str = DEFAULT_API_KEY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        mail_send_validator()  # load the spec now, not on the first request
        self.accepted: dict[str, dict[str, Any]] = {}

    def add_routes(self) -> None:
        self.route("*", MAIL_SEND_PATH, self.mail_send)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if message is None:
            message = {
                401: "The provided authorization grant is invalid, expired, or revoked",
                404: "not found",
                413: "content too large",
                429: "too many requests",
            }.get(status, "internal server error" if status >= 500 else "bad request")
        return self.errors_response(status, [(message, None)])

    def errors_response(
        self, status: int, problems: list[Problem], headers: dict[str, str] | None = None
    ) -> web.Response:
        errors = [{"message": message, "field": field, "help": None} for message, field in problems]
        return json_response({"errors": errors}, status, headers)

    async def mail_send(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        auth = rec.headers.get("authorization", "")
        if not auth:
            return self.errors_response(401, [("authorization required", None)])
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token, self.api_key):
            return self.error_response(401)
        if request.method != "POST":
            return self.errors_response(405, [("method not allowed", None)])
        if len(rec.body) > MAX_BYTES:
            return self.error_response(413)
        if rec.content_type != "application/json":
            return self.errors_response(400, [("Content-Type should be application/json.", None)])
        if rec.fields is None:
            return self.errors_response(400, [("Bad Request", None)])
        problems = mail_problems(rec.fields)
        if problems:
            return self.errors_response(400, problems)
        sandbox = (rec.fields.get("mail_settings") or {}).get("sandbox_mode") or {}
        if sandbox.get("enable") is True:
            return web.Response(status=200)  # validated, not sent
        message_id = secrets.token_urlsafe(16)[:22]
        self.accepted[message_id] = rec.fields
        return web.Response(status=202, headers={"X-Message-Id": message_id})
