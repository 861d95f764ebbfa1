"""A strict loopback Gmail API ``users.messages.send`` and its OAuth2 token endpoint.

Token endpoint ``POST /token`` (what ``token_uri`` points at), form-encoded, as Google's:

* ``grant_type=refresh_token`` with ``client_id``, ``client_secret``, ``refresh_token``:
  an unknown client or wrong secret -> 401 ``invalid_client``; a wrong refresh token ->
  400 ``invalid_grant`` ("Token has been expired or revoked."); a missing field -> 400
  ``invalid_request``.
* ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with an RS256 ``assertion``
  signed by the fake's service account key (``service_account_info()``), verified with
  google-auth's ``jwt.decode``: a bad signature, expiry or audience (``aud`` must be
  Google's token endpoint URL, which google-auth always uses, or this fake's) -> 400
  ``invalid_grant``; an issuer other than the service account -> 401
  ``invalid_client``; a ``sub`` the fake does not delegate to (``delegated_users``) or a
  scope without gmail.send -> 401 ``unauthorized_client``.
* success: ``{"access_token": "ya29.…", "expires_in": 3599, "token_type": "Bearer",
  "scope"}``.

Gmail ``POST /gmail/v1/users/{userId}/messages/send``: ``Authorization: Bearer`` with a
token the fake issued and that has not expired, else 401 ``UNAUTHENTICATED``; a token
without a send scope -> 403 ``ACCESS_TOKEN_SCOPE_INSUFFICIENT``; ``userId`` other than
``me`` or the token's user -> 403 ``Delegation denied``; a JSON object with ``raw`` (and
optional ``threadId``) only: another field -> 400 "Unknown name"; no ``raw`` -> 400
"'raw' RFC822 payload message string or uploading message via /upload/* URL required";
``raw`` not base64url -> 400; over 35 MB -> 413. The decoded message is parsed with the
``email`` package: no ``To`` -> 400 "Recipient address required"; an unparsable ``To``
-> "Invalid To header"; no ``From`` or ``Subject`` -> 400 (stricter than Gmail, which
fills in From); a ``multipart/alternative`` without both a text/plain and a text/html
part -> 400 (stricter). Errors have Google's shape ``{"error": {"code", "message",
"errors": [{"message", "domain", "reason"}], "status"}}``.

Success is ``200`` with ``{"id", "threadId", "labelIds": ["SENT"]}``; the parsed message
is kept in ``sent[id]``.

``requests`` holds the Gmail API calls (what the contract suite counts); the token
endpoint's go to ``token_requests``, are not subject to the injected faults (use
``fail_token_next``) and ``last`` is the latest request of either kind.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections import deque
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses
from functools import cache
from typing import Any, ClassVar

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as google_exceptions
from google.auth import jwt

from tests.fakes.harness import FakeServer, RecordedRequest, json_response, parse_body

SEND_PATH = "/gmail/v1/users/{userId}/messages/send"
TOKEN_PATH = "/token"
GMAIL_SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
SEND_SCOPES = frozenset(
    {
        GMAIL_SEND_SCOPE,
        "https://www.googleapis.com/auth/gmail.compose",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://mail.google.com/",
    }
)
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: the audience google-auth puts in every service account assertion, whatever token_uri is
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"
DEFAULT_CLIENT_ID = "1234567890-fake.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "GOCSPX-fake-client-secret-0001"
DEFAULT_REFRESH_TOKEN = "1//fake-refresh-token-0001"
DEFAULT_USER = "orders@bistro.example"
SERVICE_ACCOUNT_EMAIL = "orderbell@orderbell-test.iam.gserviceaccount.com"
MAX_RAW_BYTES = 36_700_160  # the discovery document's maxSize for messages.send
BASE64URL_RE = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


@cache
def service_account_key() -> tuple[str, str]:
    """A 2048-bit RSA key pair for the fake service account: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def google_error(status: int, message: str, reason: str, state: str) -> web.Response:
    return json_response(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
                "status": state,
            }
        },
        status,
    )


class FakeGmail(FakeServer):
    name: ClassVar[str] = "gmail"

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        refresh_token: str = DEFAULT_REFRESH_TOKEN,
        user: str = DEFAULT_USER,
        delegated_users: str = DEFAULT_USER,
        token_lifetime: str = "3599",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        #: the mailbox the refresh token belongs to
        self.user = user
        self.delegated_users = frozenset(u.strip() for u in delegated_users.split(",") if u)
        self.token_lifetime = int(token_lifetime)
        self.private_key, self.public_key = service_account_key()
        #: access token -> {"user", "scopes", "expires"}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.token_requests: list[RecordedRequest] = []
        self._token_faults: deque[tuple[int, Any]] = deque()
        self.sent: dict[str, EmailMessage] = {}

    # ------------------------------------------------------------------ setup, inspection

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}{TOKEN_PATH}"

    def service_account_info(self) -> dict[str, str]:
        """A service account key file's content, for a channel's service_account_json."""
        return {
            "type": "service_account",
            "project_id": "orderbell-test",
            "private_key_id": "fake-key-1",
            "private_key": self.private_key,
            "client_email": SERVICE_ACCOUNT_EMAIL,
            "client_id": "100000000000000000001",
            "token_uri": self.token_uri,
        }

    @property
    def last(self) -> RecordedRequest:
        """The latest request received, to the Gmail API or to the token endpoint."""
        received = [*self.requests[-1:], *self.token_requests[-1:]]
        if not received:
            raise AssertionError(f"fake {self.name} received no request")
        return max(received, key=lambda rec: rec.received_monotonic)

    def fail_token_next(self, n: int, status: int, body: Any = None) -> None:
        """Answer the next ``n`` token requests with ``status`` (``body`` JSON, or Google's
        ``{"error": "server_error"}`` shape)."""
        self._token_faults.extend((status, body) for _ in range(n))

    def expire_tokens(self) -> None:
        """Make every issued access token expired (as if an hour had passed)."""
        for token in self.tokens.values():
            token["expires"] = 0.0

    def reset(self) -> None:
        super().reset()
        self.token_requests.clear()
        self._token_faults.clear()

    def add_routes(self) -> None:
        assert self._app is not None
        # Not through self.route: token calls are recorded apart and skip the API faults.
        self._app.router.add_route("*", TOKEN_PATH, self._token_endpoint)
        self.route("*", SEND_PATH, self.send)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        reason, state = {
            400: ("invalidArgument", "INVALID_ARGUMENT"),
            401: ("authError", "UNAUTHENTICATED"),
            403: ("forbidden", "PERMISSION_DENIED"),
            404: ("notFound", "NOT_FOUND"),
            405: ("methodNotAllowed", "METHOD_NOT_ALLOWED"),
            413: ("uploadTooLarge", "FAILED_PRECONDITION"),
            429: ("rateLimitExceeded", "RESOURCE_EXHAUSTED"),
        }.get(status, ("backendError", "UNAVAILABLE" if status == 503 else "INTERNAL"))
        if message is None:
            message = {
                404: "Not Found",
                429: "Too many concurrent requests for user",
            }.get(status, "Backend Error" if status >= 500 else state)
        return google_error(status, message, code or reason, state)

    # ------------------------------------------------------------------ token endpoint

    async def _token_endpoint(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=headers,
            body=body,
            received_at=time.time(),
            received_monotonic=time.monotonic(),
        )
        rec.fields, rec.pairs = parse_body(rec.content_type, body)
        self.token_requests.append(rec)
        if self._token_faults:
            status, fault_body = self._token_faults.popleft()
            response = json_response(fault_body or {"error": "server_error"}, status)
        else:
            response = self._token_answer(request, rec)
        rec.status = response.status
        return response

    @staticmethod
    def _oauth_error(status: int, error: str, description: str) -> web.Response:
        return json_response({"error": error, "error_description": description}, status)

    def _token_answer(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if request.method != "POST":
            return self._oauth_error(405, "invalid_request", "Method not allowed")
        if rec.content_type != "application/x-www-form-urlencoded" or not isinstance(
            rec.fields, dict
        ):
            return self._oauth_error(400, "invalid_request", "Invalid request body")
        form = {k: v for k, v in rec.fields.items() if isinstance(v, str)}
        grant = form.get("grant_type")
        if grant == "refresh_token":
            return self._refresh_grant(form)
        if grant == JWT_GRANT:
            return self._jwt_grant(form)
        return self._oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    def _refresh_grant(self, form: dict[str, str]) -> web.Response:
        for name in ("client_id", "client_secret", "refresh_token"):
            if not form.get(name):
                return self._oauth_error(
                    400, "invalid_request", f"Missing required parameter: {name}"
                )
        if form["client_id"] != self.client_id or not secrets.compare_digest(
            form["client_secret"], self.client_secret
        ):
            return self._oauth_error(401, "invalid_client", "Unauthorized")
        if not secrets.compare_digest(form["refresh_token"], self.refresh_token):
            return self._oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        return self._issue(self.user, {GMAIL_SEND_SCOPE})

    def _jwt_grant(self, form: dict[str, str]) -> web.Response:
        assertion = form.get("assertion")
        if not assertion:
            return self._oauth_error(
                400, "invalid_request", "Missing required parameter: assertion"
            )
        try:
            claims = jwt.decode(
                assertion,
                certs={"fake-key-1": self.public_key},
                audience=[GOOGLE_TOKEN_ENDPOINT, self.token_uri],
            )
        except (google_exceptions.GoogleAuthError, ValueError) as exc:
            return self._oauth_error(400, "invalid_grant", f"Invalid JWT: {exc}")
        if claims.get("iss") != SERVICE_ACCOUNT_EMAIL:
            return self._oauth_error(401, "invalid_client", "The OAuth client was not found.")
        scopes = set(str(claims.get("scope", "")).split())
        subject = claims.get("sub")
        if subject not in self.delegated_users or not scopes & SEND_SCOPES:
            return self._oauth_error(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or "
                "client not authorized for any of the scopes requested.",
            )
        return self._issue(subject, scopes)

    def _issue(self, user: str, scopes: set[str]) -> web.Response:
        token = "ya29." + secrets.token_urlsafe(32)
        self.tokens[token] = {
            "user": user,
            "scopes": scopes,
            "expires": time.time() + self.token_lifetime,
        }
        return json_response(
            {
                "access_token": token,
                "expires_in": self.token_lifetime,
                "scope": " ".join(sorted(scopes)),
                "token_type": "Bearer",
            }
        )

    # ------------------------------------------------------------------ Gmail API

    async def send(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        grant = self.tokens.get(token) if scheme == "Bearer" else None
        if grant is None or grant["expires"] <= time.time():
            return google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                "authError",
                "UNAUTHENTICATED",
            )
        if not grant["scopes"] & SEND_SCOPES:
            return google_error(
                403,
                "Request had insufficient authentication scopes.",
                "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "PERMISSION_DENIED",
            )
        user_id = request.match_info["userId"]
        if user_id not in ("me", grant["user"]):
            return google_error(
                403, "Delegation denied for " + grant["user"], "forbidden", "PERMISSION_DENIED"
            )
        if request.method != "POST":
            return self.error_response(405, "Method not allowed")
        if len(rec.body) > MAX_RAW_BYTES * 4 // 3 + 1024:
            return self.error_response(413, "Request payload size exceeds the limit")
        body = rec.fields
        if rec.content_type != "application/json" or not isinstance(body, dict):
            return self.error_response(400, "Invalid JSON payload received.")
        for name in body:
            if name not in ("raw", "threadId"):
                return self.error_response(
                    400, f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
                )
        raw = body.get("raw")
        if not raw:
            return self.error_response(
                400,
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
            )
        if not isinstance(raw, str) or not BASE64URL_RE.match(raw):
            return self.error_response(
                400, "Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed"
            )
        try:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            return self.error_response(
                400, "Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed"
            )
        if len(data) > MAX_RAW_BYTES:
            return self.error_response(413, "Request payload size exceeds the limit")
        mail = BytesParser(policy=default_policy).parsebytes(data)
        problem = self._mail_problem(mail)
        if problem:
            return self.error_response(400, problem)
        message_id = secrets.token_hex(8)
        self.sent[message_id] = mail  # type: ignore[assignment]
        return json_response(
            {"id": message_id, "threadId": body.get("threadId") or message_id, "labelIds": ["SENT"]}
        )

    @staticmethod
    def _mail_problem(mail: Any) -> str | None:
        if mail.defects:
            return f"Invalid message: {type(mail.defects[0]).__name__}"
        to = mail.get_all("To") or []
        if not to or not "".join(str(v) for v in to).strip():
            return "Recipient address required"
        addresses = getaddresses([str(v) for v in to])
        if not addresses or any("@" not in address for _, address in addresses):
            return "Invalid To header"
        if not mail.get("From"):
            return "Invalid From header"
        if not mail.get("Subject"):
            return "Subject header required"
        if mail.get_content_type() == "multipart/alternative":
            kinds = [part.get_content_type() for part in mail.iter_parts()]
            if "text/plain" not in kinds or "text/html" not in kinds:
                return "multipart/alternative needs a text/plain and a text/html part"
        elif mail.get_content_maintype() != "text" and not mail.is_multipart():
            return f"unsupported message content type {mail.get_content_type()}"
        return None


def service_account_json(fake: FakeGmail) -> str:
    return json.dumps(fake.service_account_info())
