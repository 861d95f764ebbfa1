"""The one outbound HTTP client, and the helpers every provider adapter shares.

``HttpClient`` owns a single pooled ``aiohttp.ClientSession`` for the process. It is
created lazily, inside the running event loop, on the first request (never at import
time), and closed by ``aclose()``. aiohttp was chosen by measurement: on this kind of
machine it sent 6-15x more requests per second than httpx's async client.

Foreign exceptions stop here: a timeout, a refused or reset connection, a server that
hung up or a truncated body become ``TransientSendError``; a URL that cannot be requested
becomes ``PermanentSendError``. ``error_for_status`` turns a provider's non-2xx answer
into the right ``SendError``, and ``redact_contacts`` keeps phone numbers and email
addresses that providers echo in their error messages out of our logs and history.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from yarl import URL

from orderbell import __version__
from orderbell.errors import PermanentSendError, SendError, TransientSendError

DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0
USER_AGENT = f"orderbell/{__version__}"

FormData = Mapping[str, str] | Iterable[tuple[str, str]]

_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What a provider answered: status, headers (names lower-cased) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return orjson.loads(self.body)

    def json_or_none(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class HttpClient:
    """One pooled aiohttp session for the whole process, made on first use.

    ``limit`` caps open connections overall and ``limit_per_host`` per provider host;
    ``timeout`` is the default total time for one request (connect + send + answer), in
    seconds, which each call may override. Use ``async with HttpClient() as http`` or
    call ``await http.aclose()`` at shutdown.
    """

    def __init__(
        self,
        *,
        limit: int = 200,
        limit_per_host: int = 64,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        user_agent: str = USER_AGENT,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def started(self) -> bool:
        """Whether the pooled session exists (it is made by the first request)."""
        return self._session is not None and not self._session.closed

    def _session_for_running_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed:
            if self._loop is not loop:
                raise RuntimeError(
                    "HttpClient is bound to another event loop; make one client per loop"
                )
            return self._session
        connector = aiohttp.TCPConnector(
            limit=self.limit,
            limit_per_host=self.limit_per_host,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._client_timeout(self.timeout),
            headers={"User-Agent": self.user_agent},
            raise_for_status=False,
        )
        # aiohttp silently repeats an idempotent request (GET, PUT, DELETE) once when the
        # connection drops; a provider call must be counted and retried by our own policy.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        self._loop = loop
        return self._session

    def _client_timeout(self, total: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total, sock_connect=min(total, self.connect_timeout))

    async def aclose(self) -> None:
        """Close the pooled session and its connections. Safe to call more than once."""
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: FormData | aiohttp.FormData | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 -- per-request limit, given to aiohttp
    ) -> HttpResponse:
        """Send one request and read the whole answer; never raises a foreign exception.

        ``data`` as a mapping or a list of pairs is sent form-encoded (pairs keep repeated
        names, e.g. Twilio's ``MediaUrl``); an ``aiohttp.FormData`` is sent as multipart.
        ``json`` is serialised with orjson. Redirects are not followed: a provider API
        that redirects a POST is misconfigured, and following it would drop the body.
        Any HTTP status is returned, not raised; see ``error_for_status``.
        """
        send_headers: dict[str, str] = dict(headers) if headers else {}
        body: Any = None
        if json is not None:
            body = orjson.dumps(json)
            send_headers.setdefault("Content-Type", _JSON_CONTENT_TYPE)
        elif isinstance(data, aiohttp.FormData):
            body = data
        elif data is not None:
            pairs = data.items() if isinstance(data, Mapping) else data
            body = urlencode(list(pairs)).encode("ascii")
            send_headers.setdefault("Content-Type", _FORM_CONTENT_TYPE)
        if basic_auth is not None:
            send_headers["Authorization"] = basic_auth_header(*basic_auth)
        host = _host_of(url)
        try:
            session = self._session_for_running_loop()
            # Only pass ``timeout`` to override: aiohttp reads an explicit None as "no limit".
            extra: dict[str, Any] = {"timeout": self._client_timeout(timeout)} if timeout else {}
            async with session.request(
                method,
                url,
                data=body,
                headers=send_headers,
                allow_redirects=False,
                **extra,
            ) as resp:
                payload = await resp.read()
                return HttpResponse(
                    status=resp.status,
                    headers={k.lower(): v for k, v in resp.headers.items()},
                    body=payload,
                )
        except SendError:
            raise
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError) as exc:
            # A URL aiohttp cannot request (InvalidURL is a ValueError too) or not http(s).
            # The URL itself stays out of the message: its path may hold a webhook token.
            raise PermanentSendError(f"cannot request {host}: {type(exc).__name__}") from exc
        except TimeoutError as exc:
            limit = timeout or self.timeout
            raise TransientSendError(f"{host} did not answer within {limit:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            raise TransientSendError(f"cannot connect to {host}: {reason}") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise TransientSendError(f"{host} closed the connection before answering") from exc
        except aiohttp.ClientPayloadError as exc:
            raise TransientSendError(f"{host} sent an incomplete answer") from exc
        except aiohttp.ClientOSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise TransientSendError(f"connection to {host} failed: {reason}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransientSendError(
                f"HTTP request to {host} failed: {type(exc).__name__}"
            ) from exc


def basic_auth_header(user: str, password: str) -> str:
    """The ``Authorization`` value for HTTP Basic auth (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _host_of(url: str) -> str:
    """The host of ``url`` for messages: never its path or query, which may hold secrets."""
    try:
        host = URL(url).host
    except (ValueError, TypeError):
        return "an invalid URL"
    return host or "an invalid URL"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    Returns ``None`` when the value is missing or unreadable; never a negative number.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def retry_after_from_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` epoch timestamp (SendGrid, Intercom...)."""
    if not value:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    now = time.time() if now is None else now
    return max(0.0, reset - now)


#: Statuses worth retrying besides 5xx: request timeout, too early, too many requests.
TRANSIENT_STATUSES = frozenset({408, 425, 429})


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES or status >= 500


def error_for_status(
    resp: HttpResponse,
    provider: str,
    *,
    code: str | None,
    detail: str,
    retry_after: float | None = None,
) -> SendError:
    """The error for a provider's non-2xx answer.

    408, 425, 429 and 5xx are transient (``retry_after`` from the argument, else from the
    ``Retry-After`` header); any other status is permanent. ``detail`` is the provider's
    own message; phone numbers and email addresses in it are masked.
    """
    text = f"{provider} answered HTTP {resp.status}"
    if code:
        text += f" (code {code})"
    detail = redact_contacts(detail.strip())
    if detail:
        text += f": {_shorten(detail)}"
    if is_transient_status(resp.status):
        if retry_after is None:
            retry_after = parse_retry_after(resp.headers.get("retry-after"))
        return TransientSendError(text, retry_after=retry_after, code=code, http_status=resp.status)
    return PermanentSendError(text, code=code, http_status=resp.status)


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_PHONE_RE = re.compile(r"\+\d[\d ().-]{5,}\d|(?<![\w/.-])\d{9,15}(?![\w/])")


def redact_contacts(text: str) -> str:
    """``text`` with phone numbers and email addresses masked, fit for a log line.

    ``+15558675310`` becomes ``+*******10``; ``guest@example.com`` becomes
    ``g***@example.com``.
    """
    if not text:
        return text
    text = _EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE_RE.sub(_mask_phone, text)


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    prefix = "+" if match.group(0).startswith("+") else ""
    return prefix + "*" * max(len(digits) - 2, 1) + digits[-2:]


__all__ = [
    "DEFAULT_TIMEOUT",
    "HttpClient",
    "HttpResponse",
    "basic_auth_header",
    "error_for_status",
    "is_transient_status",
    "parse_retry_after",
    "redact_contacts",
    "retry_after_from_reset",
]
