"""Pusher Beams Publish API: a push notification to the guest's app or browser.

``POST {base_url}/publish_api/v1/instances/{instance_id}/publishes/users`` (or
``.../publishes/interests``) with ``Authorization: Bearer <secret key>`` and a JSON
body: the target (``users``: the guest's push user id, which Beams authenticated; or
``interests``), plus one notification per platform: ``apns`` (``aps.alert``), ``fcm``
(``notification``) and ``web`` (``notification``, with ``deep_link`` to the tracking
page when there is one). The default ``base_url`` is the instance's own host,
``https://<instance_id>.pushnotifications.pusher.com``.

``200`` carries ``{"publishId"}``, kept as the provider id. Errors are ``{"error",
"description"}`` (``error`` becomes ``SendError.code``); 429 and 5xx are transient.
With ``target: interests`` the interest is the metadata ``beams_interest``, else
``order-<order_id>`` (the app subscribes to its order's interest).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from orderbell.channels._cards import card_for
from orderbell.channels._support import HttpUrl, as_str, json_object, require_text
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

MAX_ID_CHARS = 164
INTEREST_RE = re.compile(r"^[A-Za-z0-9_\-=@,.;]{1,164}$")
INTEREST_KEY = "beams_interest"
Platform = Literal["apns", "fcm", "web"]


class PusherBeamsConfig(ChannelConfig):
    instance_id: str = Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="Beams instance id (a UUID)",
    )
    secret_key: SecretStr = Field(min_length=1, description="the instance's primary secret key")
    target: Literal["users", "interests"] = Field(
        default="users", description="publish to the guest's user id or to an interest"
    )
    platforms: tuple[Platform, ...] = Field(
        default=("apns", "fcm", "web"), min_length=1, description="notification formats sent"
    )
    default_title: str = Field(
        default="Your order", min_length=1, description="title when the message has no subject"
    )
    base_url: HttpUrl | None = Field(
        default=None,
        description="API root; default https://<instance_id>.pushnotifications.pusher.com",
    )

    @model_validator(mode="after")
    def _unique_platforms(self) -> PusherBeamsConfig:
        if len(set(self.platforms)) != len(self.platforms):
            raise ValueError("platforms must not repeat")
        return self


class PusherBeamsChannel:
    provider: ClassVar[str] = "pusher_beams"
    family: ClassVar[ChannelFamily] = ChannelFamily.PUSH
    title: ClassVar[str] = "Pusher Beams (push notifications)"
    docs_url: ClassVar[str] = "https://pusher.com/docs/beams/reference/publish-api/"
    Config: ClassVar[type[PusherBeamsConfig]] = PusherBeamsConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("secret_key",)
    #: push bodies are short; APNs caps the whole payload at 4 KB.
    max_body_chars: ClassVar[int | None] = 2000
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: PusherBeamsConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        root = config.base_url or f"https://{config.instance_id}.pushnotifications.pusher.com"
        self.url = f"{root}/publish_api/v1/instances/{config.instance_id}/publishes/{config.target}"
        self._headers = {"Authorization": f"Bearer {config.secret_key.get_secret_value()}"}

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        text = require_text(message.text, self.max_body_chars, "push notification")
        title = (message.subject or "").strip() or self.config.default_title
        body: dict[str, Any] = {}
        if self.config.target == "users":
            if not message.to or len(message.to) > MAX_ID_CHARS:
                raise PermanentSendError("recipient is not a Beams user id")
            body["users"] = [message.to]
        else:
            body["interests"] = [self._interest(message)]
        link = message.metadata.get("tracking_url") or card_for(message).link
        for platform in self.config.platforms:
            if platform == "apns":
                body["apns"] = {"aps": {"alert": {"title": title, "body": text}}}
            elif platform == "fcm":
                body["fcm"] = {"notification": {"title": title, "body": text}}
            else:
                note: dict[str, str] = {"title": title, "body": text}
                if link:
                    note["deep_link"] = link
                body["web"] = {"notification": note}
        return body

    @staticmethod
    def _interest(message: OutboundMessage) -> str:
        interest = message.metadata.get(INTEREST_KEY, "").strip()
        if not interest and message.metadata.get("order_id"):
            interest = f"order-{message.metadata['order_id']}"
        if not INTEREST_RE.match(interest):
            raise PermanentSendError("no valid Beams interest for this message")
        return interest

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        resp = await self.http.request("POST", self.url, json=body, headers=self._headers)
        if resp.ok:
            return SendResult(
                provider_message_id=as_str(json_object(resp).get("publishId")),
                provider_status="published",
                http_status=resp.status,
            )
        raise _beams_error(resp)


def _beams_error(resp: HttpResponse) -> Exception:
    answer = json_object(resp)
    code = str(answer.get("error") or "") or None
    detail = str(answer.get("description") or "") or (resp.text()[:200] if resp.body else "")
    return error_for_status(resp, PusherBeamsChannel.provider, code=code, detail=detail)


__all__ = ["PusherBeamsChannel", "PusherBeamsConfig"]
