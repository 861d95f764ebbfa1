"""Small helpers the chat, messaging and CRM adapters share (no provider knowledge here).

* ``http_url`` validates a ``base_url``-style setting; ``HttpUrl`` is a settings field type
  that applies it;
* ``rebase`` points a webhook URL (Slack, Teams, Google Chat, Discord: the URL is the
  secret) at another origin, so ``base_url`` can send it to a local fake;
* ``require_text`` refuses an empty or over-long body before any request is made;
* ``json_object`` reads a JSON object body, or an empty dict; ``callback_json`` reads a
  provider callback's body, which must be a JSON object;
* ``outside_window`` reads the engine's verdict on a messaging app's 24-hour window;
* ``answered_by_provider`` marks keyword replies the provider's own opt-out service has
  already answered (so the guest is not confirmed twice).

Metadata keys the adapters read are named here, so grep finds every one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, SecretStr
from yarl import URL

from orderbell.channels.base import Callback
from orderbell.channels.http import HttpResponse
from orderbell.domain.consent import keyword_action
from orderbell.errors import PayloadError, PermanentSendError

#: "open" or "closed": whether the guest wrote to us within the app's 24-hour window
#: (WhatsApp customer service window, Messenger standard messaging window). The engine
#: decides; the adapter only picks the wire form (template / message tag) from it.
WINDOW_KEY = "conversation_window"
#: the order status the message is about (e.g. "out_for_delivery"), for CRM syncs
STATUS_KEY = "order_status"
#: the trigger that planned the message (a status, "delayed", "feedback", ...)
TRIGGER_KEY = "trigger"


def http_url(value: str) -> str:
    """A ``base_url`` setting: http(s), without a trailing slash."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


#: a ``base_url``-style setting, checked and normalised by ``http_url``
HttpUrl = Annotated[str, AfterValidator(http_url)]


def _secret_http_url(value: SecretStr) -> SecretStr:
    http_url(value.get_secret_value())
    return value


#: a URL that is itself the credential (Slack, Teams webhooks): checked, kept secret
SecretHttpUrl = Annotated[SecretStr, AfterValidator(_secret_http_url)]


def rebase(url: str, base_url: str | None) -> str:
    """``url`` with its scheme, host and port taken from ``base_url`` (path and query
    kept), or ``url`` unchanged when ``base_url`` is None."""
    if not base_url:
        return url
    base = URL(base_url)
    target = URL(url, encoded=True)
    rebased = target.with_scheme(base.scheme).with_host(base.host or "")
    return str(rebased.with_port(base.explicit_port))


def require_text(text: str, limit: int | None, what: str) -> str:
    """``text`` unless it is blank or longer than ``limit`` characters."""
    if not text or not text.strip():
        raise PermanentSendError(f"{what} is empty")
    if limit is not None and len(text) > limit:
        raise PermanentSendError(
            f"{what} is {len(text)} characters; the provider accepts at most {limit}"
        )
    return text


def callback_json(body: bytes, what: str) -> dict[str, Any]:
    """A provider callback's body as a JSON object; ``PayloadError`` naming ``what`` (e.g.
    "Mailgun webhook") when it is not JSON or not an object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"{what} body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"{what} body must be a JSON object")
    return payload


def json_object(resp: HttpResponse) -> dict[str, Any]:
    """The response body as a JSON object, or ``{}`` when it is not one."""
    payload = resp.json_or_none()
    return payload if isinstance(payload, dict) else {}


def outside_window(metadata: Mapping[str, str]) -> bool:
    """Whether the engine said the 24-hour conversation window is closed."""
    return metadata.get(WINDOW_KEY, "").strip().lower() == "closed"


def as_str(value: Any) -> str | None:
    """``value`` as a string id (providers send ids as strings or numbers), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        return str(value) or None
    return None


__all__ = [
    "STATUS_KEY",
    "TRIGGER_KEY",
    "WINDOW_KEY",
    "as_str",
    "http_url",
    "json_object",
    "outside_window",
    "rebase",
    "require_text",
]


def answered_by_provider(callback: Callback, enabled: bool) -> Callback:
    """With ``enabled`` (the account's own STOP/HELP auto-replies are on), every inbound
    STOP, START or HELP keyword is marked as already answered by the provider: Order
    Bell still records the consent change, but sends no confirmation of its own."""
    if not enabled or not callback.inbound:
        return callback
    marked = tuple(
        replace(m, provider_keyword=action.value.upper())
        if m.provider_keyword is None and (action := keyword_action(m.text or "")) is not None
        else m
        for m in callback.inbound
    )
    return replace(callback, inbound=marked)
