"""WhatsApp Business Cloud API: free text inside the 24-hour window, templates outside it.

``POST {base_url}/{api_version}/{phone_number_id}/messages`` with ``Authorization: Bearer
<system-user token>`` and a JSON body (Meta's "Business Messaging API" v23.0 OpenAPI:
``TextMessage`` and ``TemplateMessage``). ``200`` carries ``messages[0].id`` (``wamid...``),
the id status webhooks refer to, and ``message_status`` (accepted, held_for_quality_assessment,
paused).

Which form is sent is the engine's decision, read from the message metadata:

* ``whatsapp_template`` names an approved template; ``template_params`` is a JSON list
  of the body parameters (``{{1}}``, ``{{2}}``...); ``whatsapp_language`` overrides
  the template language (else ``template_language``, else the message locale);
* otherwise, when ``conversation_window`` is ``closed``, the template configured for the
  message's ``trigger`` in ``templates`` is used; with none configured the message is
  refused locally with code ``131047``, as Meta would refuse free text;
* otherwise the rendered text goes out as ``type: text`` (at most 4096 characters).

Errors are Graph errors (see ``_graph.py``). Transient: 130429 (throughput), 131056
(pair rate limit), 4 and 80007 (app / account rate limits), 131000/131016/133004 and 1/2
(Meta-side trouble). Permanent with their code: 131047 (re-engagement: outside the
window, so the engine can fall back to a template or another channel), 131026
(undeliverable), 132000-132018 (template problems), 190 (token).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import orjson
from pydantic import Field, SecretStr, field_validator

from orderbell.channels import meta_webhooks
from orderbell.channels._graph import graph_error
from orderbell.channels._support import (
    TRIGGER_KEY,
    HttpUrl,
    as_str,
    json_object,
    outside_window,
    require_text,
)
from orderbell.channels.base import (
    Callback,
    CallbackRequest,
    ChannelConfig,
    OutboundMessage,
    SendResult,
)
from orderbell.channels.http import HttpClient
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

MAX_TEXT_CHARS = 4096  # TextMessage_1.body.maxLength in Meta's spec
MAX_PARAM_CHARS = 32768  # TextParameter.text.maxLength
WA_ID_RE = re.compile(r"^\+?[1-9]\d{6,14}$")
TEMPLATE_NAME_RE = re.compile(r"^[a-z0-9_]{1,512}$")
TEMPLATE_KEY = "whatsapp_template"
PARAMS_KEY = "template_params"
LANGUAGE_KEY = "whatsapp_language"

#: Graph codes worth retrying although Meta may answer them with HTTP 400.
TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 133004})
#: 24-hour customer service window closed: send an approved template instead.
REENGAGEMENT_CODE = "131047"
#: the recipient cannot get the message (not on WhatsApp, old app, ...).
UNDELIVERABLE_CODE = "131026"


class WhatsAppConfig(ChannelConfig):
    access_token: SecretStr = Field(
        min_length=1, description="system-user access token (whatsapp_business_messaging)"
    )
    phone_number_id: str = Field(
        pattern=r"^\d{1,32}$", description="the business phone number's id (not the number)"
    )
    api_version: str = Field(
        default="v23.0", pattern=r"^v\d+\.\d+$", description="Graph API version, e.g. v23.0"
    )
    base_url: HttpUrl = Field(
        default="https://graph.facebook.com", description="Graph API root; a fake in tests"
    )
    templates: dict[str, str] = Field(
        default_factory=dict,
        description="approved UTILITY template per trigger, used outside the 24-hour window",
    )
    template_language: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$",
        description="template language code (e.g. en_US); default: the message locale",
    )
    preview_url: bool = Field(default=False, description="let WhatsApp preview links in text")
    app_secret: SecretStr | None = Field(
        default=None,
        description="Meta App Secret: checks X-Hub-Signature-256 on status and message webhooks",
    )
    verify_token: SecretStr | None = Field(
        default=None,
        description="any string you choose; Meta sends it back in the webhook handshake",
    )

    @field_validator("templates")
    @classmethod
    def _template_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value.values():
            if not TEMPLATE_NAME_RE.match(name):
                raise ValueError("template names are lower-case letters, digits and _")
        return value


class WhatsAppChannel:
    provider: ClassVar[str] = "whatsapp"
    family: ClassVar[ChannelFamily] = ChannelFamily.WHATSAPP
    title: ClassVar[str] = "WhatsApp Business Cloud API (Meta)"
    docs_url: ClassVar[str] = (
        "https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages"
    )
    Config: ClassVar[type[WhatsAppConfig]] = WhatsAppConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token", "app_secret", "verify_token")
    max_body_chars: ClassVar[int | None] = MAX_TEXT_CHARS
    #: default throughput per business number (upgraded automatically to 1000).
    rate_limit_per_second: ClassVar[float | None] = 80.0

    def __init__(self, config: WhatsAppConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/{config.api_version}/{config.phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {config.access_token.get_secret_value()}"}

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The /messages body for ``message``: a template or free text (module doc)."""
        if not WA_ID_RE.match(message.to):
            raise PermanentSendError("recipient is not a WhatsApp phone number")
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.removeprefix("+"),
        }
        template = self._template_for(message)
        if template is None:
            text = require_text(message.text, MAX_TEXT_CHARS, "WhatsApp text")
            body["type"] = "text"
            body["text"] = {"body": text, "preview_url": self.config.preview_url}
            return body
        body["type"] = "template"
        body["template"] = {
            "name": template,
            "language": {"policy": "deterministic", "code": self._language(message)},
        }
        params = _template_params(message.metadata.get(PARAMS_KEY))
        if params:
            body["template"]["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
            ]
        return body

    def _template_for(self, message: OutboundMessage) -> str | None:
        name = message.metadata.get(TEMPLATE_KEY, "").strip()
        if not name and outside_window(message.metadata):
            trigger = message.metadata.get(TRIGGER_KEY, "")
            name = self.config.templates.get(trigger, "")
            if not name:
                raise PermanentSendError(
                    "the WhatsApp 24-hour window is closed and no approved template is "
                    f"configured for trigger {trigger or '(none)'!r}",
                    code=REENGAGEMENT_CODE,
                )
        if not name:
            return None
        if not TEMPLATE_NAME_RE.match(name):
            raise PermanentSendError(f"{name!r} is not a WhatsApp template name")
        return name

    def _language(self, message: OutboundMessage) -> str:
        chosen = message.metadata.get(LANGUAGE_KEY) or self.config.template_language
        return chosen or message.locale.replace("-", "_")

    def verify_callback(self, request: CallbackRequest) -> None:
        """The GET handshake (verify_token) or X-Hub-Signature-256 (app_secret)."""
        meta_webhooks.verify(
            _secret(self.config.app_secret), _secret(self.config.verify_token), request
        )

    def parse_callback(self, request: CallbackRequest) -> Callback:
        """Statuses become delivery reports (wamid), messages inbound messages (wa_id)."""
        return meta_webhooks.parse_whatsapp(request, self.config.phone_number_id)

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        resp = await self.http.request("POST", self.url, json=body, headers=self._headers)
        if resp.ok:
            answer = json_object(resp)
            messages = answer.get("messages")
            first = messages[0] if isinstance(messages, list) and messages else {}
            first = first if isinstance(first, dict) else {}
            status = first.get("message_status")
            return SendResult(
                provider_message_id=as_str(first.get("id")),
                provider_status=status if isinstance(status, str) else "accepted",
                http_status=resp.status,
            )
        raise graph_error(resp, self.provider, TRANSIENT_CODES)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _template_params(raw: str | None) -> list[str]:
    """The body parameters from ``template_params`` (a JSON list), as WhatsApp takes them:
    strings without new lines, tabs or more than four spaces in a row (error 132018)."""
    if raw is None or not raw.strip():
        return []
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PermanentSendError("template_params is not a JSON list") from None
    if not isinstance(values, list):
        raise PermanentSendError("template_params is not a JSON list")
    params = []
    for value in values:
        if isinstance(value, dict | list) or value is None:
            raise PermanentSendError("template parameters must be strings or numbers")
        text = re.sub(r"\s*[\r\n\t]+\s*", " ", str(value))
        text = re.sub(r" {5,}", "    ", text).strip()
        if not text:
            raise PermanentSendError("a template parameter is empty")
        if len(text) > MAX_PARAM_CHARS:
            raise PermanentSendError("a template parameter is too long")
        params.append(text)
    return params


__all__ = [
    "REENGAGEMENT_CODE",
    "TRANSIENT_CODES",
    "UNDELIVERABLE_CODE",
    "WhatsAppChannel",
    "WhatsAppConfig",
]
