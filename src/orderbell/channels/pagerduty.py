"""PagerDuty Events API v2: an alert per order for the on-call manager.

``POST {base_url}/v2/enqueue`` with JSON ``{"routing_key", "event_action", "dedup_key",
"payload": {"summary", "source", "severity", "custom_details"}, "links"}``; the routing
key (the service integration key) in the body is the only credential. PagerDuty answers
``202`` with ``{"status": "success", "message": "Event processed", "dedup_key"}``; the
``dedup_key`` is kept as the provider id.

One alert per order: ``dedup_key`` is ``orderbell-order-<order_id>`` (at most 255
characters), so a second trigger for the same order updates the open alert and
``pagerduty_action: resolve`` (or ``acknowledge``) in the message metadata closes it; the
default action is ``trigger``. ``summary`` is the subject or text, cut to 1024
characters; the full text rides in ``custom_details``. ``pagerduty_severity`` in the
metadata overrides the configured severity.

Per PagerDuty's own retry table: 400 (bad event, invalid routing key) is permanent;
429 (no ``Retry-After`` is documented) and 5xx are transient. Errors are ``{"status",
"message", "errors": [...]}``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from orderbell.channels._cards import card_for, truncate
from orderbell.channels._support import HttpUrl, as_str, json_object, require_text
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

ACTION_KEY = "pagerduty_action"
SEVERITY_KEY = "pagerduty_severity"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY_CHARS = 1024
MAX_DEDUP_CHARS = 255
DEDUP_PREFIX = "orderbell-order-"

Severity = Literal["critical", "error", "warning", "info"]


class PagerDutyConfig(ChannelConfig):
    routing_key: SecretStr = Field(
        description="Events API v2 integration key of the PagerDuty service (32 characters)"
    )
    source: str = Field(
        default="orderbell", min_length=1, description="payload.source (the affected system)"
    )
    severity: Severity = Field(default="warning", description="severity of triggered alerts")
    component: str | None = Field(default=None, description="payload.component, e.g. a site")
    client: str = Field(default="Order Bell", description="name shown as the alert's client")
    base_url: HttpUrl = Field(
        default="https://events.pagerduty.com", description="Events API root; a fake in tests"
    )

    @field_validator("routing_key")
    @classmethod
    def _routing_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if len(key) != 32 or not key.isalnum():
            raise ValueError("an Events API v2 routing key is 32 letters and digits")
        return value


class PagerDutyChannel:
    provider: ClassVar[str] = "pagerduty"
    family: ClassVar[ChannelFamily] = ChannelFamily.INCIDENT
    title: ClassVar[str] = "PagerDuty Events API v2"
    docs_url: ClassVar[str] = "https://developer.pagerduty.com/docs/events-api-v2-overview"
    Config: ClassVar[type[PagerDutyConfig]] = PagerDutyConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("routing_key",)
    #: the summary is cut to 1024 characters; the full text goes in custom_details.
    max_body_chars: ClassVar[int | None] = None
    #: limits are dynamic per service (429 when exceeded).
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: PagerDutyConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/v2/enqueue"
        self._key = config.routing_key.get_secret_value()

    def event(self, message: OutboundMessage) -> dict[str, Any]:
        """The event for ``message``: trigger, acknowledge or resolve the order's alert."""
        action = message.metadata.get(ACTION_KEY, "trigger").strip().lower() or "trigger"
        if action not in ACTIONS:
            raise PermanentSendError(f"unknown PagerDuty action {action!r}")
        dedup_key = self.dedup_key(message)
        event: dict[str, Any] = {"routing_key": self._key, "event_action": action}
        if dedup_key:
            event["dedup_key"] = dedup_key
        elif action != "trigger":
            raise PermanentSendError(f"a PagerDuty {action} needs the message's order_id")
        if action != "trigger":
            return event
        text = require_text(message.text, None, "PagerDuty summary")
        card = card_for(message)
        severity = message.metadata.get(SEVERITY_KEY, self.config.severity)
        if severity not in SEVERITIES:
            raise PermanentSendError(f"unknown PagerDuty severity {severity!r}")
        details: dict[str, str] = {"message": text}
        details.update({label.lower(): value for label, value in card.facts})
        payload: dict[str, Any] = {
            "summary": truncate(message.subject or text, MAX_SUMMARY_CHARS),
            "source": self.config.source,
            "severity": severity,
            "custom_details": details,
        }
        if self.config.component:
            payload["component"] = self.config.component
        event["payload"] = payload
        event["client"] = self.config.client
        if card.link:
            event["client_url"] = card.link
            event["links"] = [{"href": card.link, "text": "Open order"}]
        return event

    @staticmethod
    def dedup_key(message: OutboundMessage) -> str | None:
        order = message.metadata.get("order_id", "").strip()
        if not order:
            return None
        key = DEDUP_PREFIX + order
        if len(key) > MAX_DEDUP_CHARS:
            raise PermanentSendError("the order id is too long for a PagerDuty dedup_key")
        return key

    async def send(self, message: OutboundMessage) -> SendResult:
        event = self.event(message)
        resp = await self.http.request("POST", self.url, json=event)
        if resp.ok:
            answer = json_object(resp)
            return SendResult(
                provider_message_id=as_str(answer.get("dedup_key")) or event.get("dedup_key"),
                provider_status=str(answer.get("status") or "success"),
                http_status=resp.status,
            )
        raise _pagerduty_error(resp)


def _pagerduty_error(resp: HttpResponse) -> Exception:
    answer = json_object(resp)
    parts = [str(answer.get("message") or "").strip()]
    errors = answer.get("errors")
    if isinstance(errors, list):
        parts += [str(e) for e in errors[:5]]
    detail = "; ".join(p for p in parts if p) or (resp.text()[:200] if resp.body else "")
    return error_for_status(resp, PagerDutyChannel.provider, code=None, detail=detail)


__all__ = ["PagerDutyChannel", "PagerDutyConfig"]
