"""Gmail API ``users.messages.send``: email from a Google Workspace or Gmail mailbox.

``POST {base_url}/gmail/v1/users/me/messages/send`` with ``Authorization: Bearer
<OAuth2 access token>`` (scope ``https://www.googleapis.com/auth/gmail.send``) and the
JSON body ``{"raw": base64url(RFC 2822 message)}``. ``200`` answers the Message resource
``{"id", "threadId", "labelIds": ["SENT"]}``; ``id`` is kept. The message is built with
the standard library's ``email`` package: ``multipart/alternative`` with the text and
HTML parts (text only when there is no HTML), ``From``/``To``/``Subject``/``Date``/
``Message-ID``, ``Reply-To`` and the extra headers of metadata keys prefixed ``header:``.

Credentials, one of:

* a service account key (``service_account_json`` or ``service_account_file``) with
  domain-wide delegation, acting as ``delegated_user`` (default ``from_email``): Google
  Workspace;
* an authorized user's ``client_id``, ``client_secret`` and ``refresh_token`` (from an
  OAuth consent for the mailbox): Workspace or consumer Gmail.

Tokens are minted and refreshed by google-auth (``google.oauth2.service_account`` and
``google.oauth2.credentials``), whose token requests go through our pooled
``HttpClient``: google-auth's transport interface is synchronous, so the refresh runs in
a worker thread and each of its HTTP calls is handed back to the event loop (see
``LoopTransport``). The token endpoint is configurable (``token_uri``) so tests point it
at a fake. A token is reused until google-auth deems it expired; a ``401`` from Gmail
drops it and retries the send once with a fresh one.

Errors have Google's shape ``{"error": {"code", "message", "errors": [{"reason",
...}], "status"}}``; the ``reason`` is carried as the code. 429, 5xx and 403 with
``rateLimitExceeded``/``userRateLimitExceeded`` are transient. Quota: a send costs 100
units of the 15,000 per user per minute, so at most 2.5 sends a second per mailbox.
Gmail has no idempotency key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import parse_qsl

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from orderbell.channels._support import HttpUrl
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily
from orderbell.errors import ConfigError, PermanentSendError, SendError, TransientSendError

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

GMAIL_SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 -- a URL
EMAIL_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
HEADER_NAME_RE = re.compile(r"^[!-9;-~]+$")
HEADER_PREFIX = "header:"
#: headers the message builder sets itself; metadata may not replace them
RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to", "mime-version"}
    | {"content-type", "content-transfer-encoding"}
)
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "backendError"})
_RETRY_AFTER_RE = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")


class GmailConfig(ChannelConfig):
    from_email: str = Field(description="the mailbox (or a verified send-as alias) sending")
    from_name: str | None = Field(default=None, description="sender display name")
    reply_to: str | None = Field(default=None, description="Reply-To address")
    service_account_json: SecretStr | None = Field(
        default=None, description="service account key (the JSON text), domain-wide delegation"
    )
    service_account_file: str | None = Field(
        default=None, description="path of that key file, instead of service_account_json"
    )
    delegated_user: str | None = Field(
        default=None, description="Workspace user the service account acts as (default from_email)"
    )
    client_id: str | None = Field(default=None, description="OAuth client id (authorized user)")
    client_secret: SecretStr | None = Field(default=None, description="OAuth client secret")
    refresh_token: SecretStr | None = Field(
        default=None, description="refresh token granted for the gmail.send scope"
    )
    token_uri: HttpUrl | None = Field(
        default=None,
        description="OAuth token endpoint; default the key file's, or "
        "https://oauth2.googleapis.com/token; a fake in tests",
    )
    base_url: HttpUrl = Field(
        default="https://gmail.googleapis.com",
        description="API root; point it at a fake in tests",
    )

    @field_validator("from_email", "reply_to", "delegated_user")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_RE.match(value):
            raise ValueError("must be an email address")
        return value

    @field_validator("service_account_json")
    @classmethod
    def _key_json(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_key_info(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        service = self.service_account_json is not None or self.service_account_file is not None
        user = [self.client_id, self.client_secret, self.refresh_token]
        if self.service_account_json is not None and self.service_account_file is not None:
            raise ValueError("set service_account_json or service_account_file, not both")
        if service and any(v is not None for v in user):
            raise ValueError("use either a service account or client_id/secret/refresh_token")
        if not service and any(v is None for v in user):
            raise ValueError(
                "set service_account_json (or _file), or all of client_id, client_secret and "
                "refresh_token"
            )
        if not service and self.delegated_user is not None:
            raise ValueError("delegated_user is only for a service account")
        return self


def _check_key_info(text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError:
        raise ValueError("must be the service account key file's JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValueError('must be a service account key ("type": "service_account")')
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise ValueError(f"the key lacks {', '.join(missing)}")
    return info


class GmailChannel:
    provider: ClassVar[str] = "gmail"
    family: ClassVar[ChannelFamily] = ChannelFamily.EMAIL
    title: ClassVar[str] = "Gmail API (email from a Google mailbox)"
    docs_url: ClassVar[str] = (
        "https://developers.google.com/workspace/gmail/api/reference/rest/v1/users.messages/send"
    )
    Config: ClassVar[type[GmailConfig]] = GmailConfig
    secret_fields: ClassVar[tuple[str, ...]] = (
        "service_account_json",
        "client_secret",
        "refresh_token",
    )
    max_body_chars: ClassVar[int | None] = None
    #: 15,000 quota units per user per minute / 100 units per send
    rate_limit_per_second: ClassVar[float | None] = 2.5

    def __init__(self, config: GmailConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/gmail/v1/users/me/messages/send"
        self._from = (
            formataddr((config.from_name, config.from_email))
            if config.from_name
            else config.from_email
        )
        self._domain = config.from_email.rsplit("@", 1)[1]
        self._token = GoogleToken(_credentials(config), http)

    def mime(self, message: OutboundMessage) -> EmailMessage:
        """The RFC 2822 message for ``message``, after the checks Gmail would make."""
        if not message.subject or not message.subject.strip():
            raise PermanentSendError("an email needs a subject")
        if not EMAIL_RE.match(message.to):
            raise PermanentSendError("recipient is not an email address")
        if not message.text and not message.html:
            raise PermanentSendError("an email needs a text or HTML body")
        mail = EmailMessage(policy=SMTP)
        try:
            mail["From"] = self._from
            mail["To"] = message.to
            mail["Subject"] = message.subject.strip()
            mail["Date"] = format_datetime(datetime.now(UTC))
            mail["Message-ID"] = (
                f"<orderbell.{message.message_id}.{secrets.token_hex(6)}@{self._domain}>"
            )
            if self.config.reply_to:
                mail["Reply-To"] = self.config.reply_to
            for key, value in message.metadata.items():
                if not key.startswith(HEADER_PREFIX):
                    continue
                name = key[len(HEADER_PREFIX) :].strip()
                if not HEADER_NAME_RE.match(name) or name.lower() in RESERVED_HEADERS:
                    raise PermanentSendError(f"invalid or reserved email header {name!r}")
                mail[name] = str(value)
        except ValueError as exc:  # a line break in a header value, an unparsable address
            raise PermanentSendError(f"cannot build the email: {exc}") from None
        if message.text:
            mail.set_content(message.text)
            if message.html:
                mail.add_alternative(message.html, subtype="html")
        else:
            mail.set_content(message.html or "", subtype="html")
        return mail

    def payload(self, message: OutboundMessage) -> dict[str, str]:
        raw = base64.urlsafe_b64encode(self.mime(message).as_bytes(policy=SMTP))
        return {"raw": raw.decode("ascii")}

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        fresh = not self._token.valid
        authorization = await self._token.authorization()
        resp = await self._post(body, authorization)
        if resp.status == 401 and not fresh:
            # The cached token was revoked or expired early: get a new one, try once more.
            self._token.invalidate(authorization)
            resp = await self._post(body, await self._token.authorization())
        if resp.ok:
            payload = resp.json_or_none()
            ident = payload.get("id") if isinstance(payload, dict) else None
            labels = payload.get("labelIds") if isinstance(payload, dict) else None
            return SendResult(
                provider_message_id=ident if isinstance(ident, str) else None,
                provider_status="sent" if isinstance(labels, list) and "SENT" in labels else None,
                http_status=resp.status,
            )
        raise _gmail_error(resp)

    async def _post(self, body: Mapping[str, str], authorization: str) -> HttpResponse:
        headers = {"Authorization": authorization}
        return await self.http.request("POST", self.url, json=body, headers=headers)


# ---------------------------------------------------------------------- OAuth2 tokens


def _credentials(config: GmailConfig) -> Credentials:
    """google-auth credentials for the configured account (imported here: google-auth
    takes a while to import, and only Gmail channels need it)."""
    if config.service_account_json is not None or config.service_account_file is not None:
        from google.oauth2 import service_account

        if config.service_account_file is not None:
            try:
                text = Path(config.service_account_file).read_text(encoding="utf-8")
                info = _check_key_info(text)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"channel 'gmail': service_account_file: {exc}", field="service_account_file"
                ) from None
        else:
            info = json.loads(config.service_account_json.get_secret_value())  # type: ignore[union-attr]
        try:
            credentials = service_account.Credentials.from_service_account_info(
                info,
                scopes=[GMAIL_SEND_SCOPE],
                subject=config.delegated_user or config.from_email,
            )
        except (ValueError, TypeError, KeyError):
            raise ConfigError(
                "channel 'gmail': the service account key cannot be read (private_key?)",
                field="service_account_json",
            ) from None
        if config.token_uri:
            credentials = credentials.with_token_uri(config.token_uri)
        return credentials
    from google.oauth2 import credentials as user_credentials

    return user_credentials.Credentials(
        token=None,
        refresh_token=config.refresh_token.get_secret_value(),  # type: ignore[union-attr]
        client_id=config.client_id,
        client_secret=config.client_secret.get_secret_value(),  # type: ignore[union-attr]
        token_uri=config.token_uri or DEFAULT_TOKEN_URI,
    )


class GoogleToken:
    """One google-auth credential, refreshed at most once at a time, shared by sends."""

    def __init__(self, credentials: Credentials, http: HttpClient) -> None:
        self.credentials = credentials
        self.http = http
        self._lock = asyncio.Lock()

    @property
    def valid(self) -> bool:
        return bool(self.credentials.valid)

    def invalidate(self, authorization: str) -> None:
        """Forget the token that ``authorization`` carried, unless already replaced."""
        current: dict[str, str] = {}
        if self.credentials.token:
            self.credentials.apply(current)
        if current.get("authorization") == authorization:
            self.credentials.token = None

    async def authorization(self) -> str:
        """``Bearer <token>``, refreshing first when the token is missing or expiring."""
        async with self._lock:
            if not self.credentials.valid:
                await self._refresh()
            headers: dict[str, str] = {}
            self.credentials.apply(headers)
        return headers["authorization"]

    async def _refresh(self) -> None:
        from google.auth import exceptions

        transport = LoopTransport(self.http, asyncio.get_running_loop())
        try:
            await asyncio.to_thread(self.credentials.refresh, transport)
        except exceptions.RefreshError as exc:
            raise _refresh_error(exc, transport.last) from None
        except exceptions.GoogleAuthError as exc:
            raise PermanentSendError(f"gmail: cannot get an access token: {exc}") from None


class _Answer:
    """A ``google.auth.transport.Response`` over our ``HttpResponse``."""

    def __init__(self, resp: HttpResponse) -> None:
        self.status = resp.status
        self.headers = dict(resp.headers)
        self.data = resp.body


class LoopTransport:
    """google-auth's (synchronous) transport, carried out by the async ``HttpClient``.

    google-auth calls it from the worker thread running ``Credentials.refresh``; each
    call is scheduled on the event loop that owns the client and waited for. 408, 429 and
    5xx answers raise ``TransientSendError`` at once, so the dispatcher's backoff retries
    rather than google-auth's own (which would sleep in the thread); other answers go
    back to google-auth, which raises ``RefreshError`` for a 4xx.
    """

    def __init__(self, http: HttpClient, loop: asyncio.AbstractEventLoop) -> None:
        self.http = http
        self.loop = loop
        self.last: HttpResponse | None = None

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Answer:
        send_headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
        content_type = {k.lower(): v for k, v in (headers or {}).items()}.get("content-type", "")
        request: dict[str, Any] = {"headers": send_headers}
        if body and content_type.startswith("application/json"):
            request["json"] = orjson.loads(body)
        elif body:
            request["data"] = parse_qsl(body.decode(), keep_blank_values=True)
        # google-auth's own timeout (up to 120 s) is not used: the client's default applies.
        call = self.http.request(method, url, **request)
        resp = asyncio.run_coroutine_threadsafe(call, self.loop).result()
        self.last = resp
        if resp.status in (408, 429) or resp.status >= 500:
            raise _token_endpoint_error(resp)
        return _Answer(resp)


def _token_endpoint_error(resp: HttpResponse) -> SendError:
    payload = resp.json_or_none()
    code = detail = None
    if isinstance(payload, dict):
        code = payload.get("error") if isinstance(payload.get("error"), str) else None
        detail = payload.get("error_description")
    return error_for_status(
        resp, "gmail token endpoint", code=code, detail=str(detail or code or "")
    )


def _refresh_error(exc: Exception, last: HttpResponse | None) -> SendError:
    if last is not None and not last.ok:
        return _token_endpoint_error(last)
    return PermanentSendError(f"gmail: cannot get an access token: {exc}")


# ---------------------------------------------------------------------- errors


def _gmail_error(resp: HttpResponse) -> SendError:
    payload = resp.json_or_none()
    reason: str | None = None
    detail = ""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        detail = str(error.get("message") or "")
        errors = error.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            reason = errors[0].get("reason")
        reason = reason or error.get("status")
    elif resp.body:
        detail = resp.text()[:200]
    retry_after = None
    match = _RETRY_AFTER_RE.search(detail)
    if match and "retry-after" not in resp.headers:
        when = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        retry_after = max(0.0, (when - datetime.now(UTC)).total_seconds())
    result = error_for_status(
        resp, GmailChannel.provider, code=reason, detail=detail, retry_after=retry_after
    )
    if reason in TRANSIENT_REASONS and isinstance(result, PermanentSendError):
        return TransientSendError(
            str(result), code=reason, http_status=resp.status, retry_after=retry_after
        )
    return result


__all__ = ["GMAIL_SEND_SCOPE", "GmailChannel", "GmailConfig", "LoopTransport"]
