"""Every outbound provider, by its registry key. Adding a provider: one module, one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from orderbell.channels.apprise_channel import AppriseChannel
from orderbell.channels.base import Channel
from orderbell.channels.discord import DiscordChannel
from orderbell.channels.freshdesk import FreshdeskChannel
from orderbell.channels.gmail import GmailChannel
from orderbell.channels.google_chat import GoogleChatChannel
from orderbell.channels.http import HttpClient
from orderbell.channels.hubspot_crm import HubSpotCrmChannel
from orderbell.channels.intercom import IntercomChannel
from orderbell.channels.mailgun import MailgunChannel
from orderbell.channels.messagebird import MessageBirdChannel
from orderbell.channels.messenger import MessengerChannel
from orderbell.channels.outbox import OutboxChannel
from orderbell.channels.pagerduty import PagerDutyChannel
from orderbell.channels.plivo import PlivoChannel
from orderbell.channels.pusher_beams import PusherBeamsChannel
from orderbell.channels.sendgrid import SendGridChannel
from orderbell.channels.shopify_fulfillment import ShopifyFulfillmentChannel
from orderbell.channels.slack import SlackChannel
from orderbell.channels.sns import SnsSmsChannel, SnsTopicChannel
from orderbell.channels.teams import TeamsChannel
from orderbell.channels.twilio_sms import TwilioSmsChannel
from orderbell.channels.twilio_voice import TwilioVoiceChannel
from orderbell.channels.viber import ViberChannel
from orderbell.channels.whatsapp import WhatsAppChannel
from orderbell.channels.zoho_crm import ZohoCrmChannel
from orderbell.errors import ConfigError

CHANNELS: dict[str, Any] = {
    "outbox": OutboxChannel,
    "twilio_sms": TwilioSmsChannel,
    "sendgrid": SendGridChannel,
    "whatsapp": WhatsAppChannel,
    "messenger": MessengerChannel,
    "viber": ViberChannel,
    "slack": SlackChannel,
    "teams": TeamsChannel,
    "google_chat": GoogleChatChannel,
    "discord": DiscordChannel,
    "pagerduty": PagerDutyChannel,
    "pusher_beams": PusherBeamsChannel,
    "intercom": IntercomChannel,
    "freshdesk": FreshdeskChannel,
    "hubspot_crm": HubSpotCrmChannel,
    "zoho_crm": ZohoCrmChannel,
    "shopify_fulfillment": ShopifyFulfillmentChannel,
    "apprise": AppriseChannel,
    "twilio_voice": TwilioVoiceChannel,
    "plivo": PlivoChannel,
    "messagebird": MessageBirdChannel,
    "sns": SnsSmsChannel,
    "sns_topic": SnsTopicChannel,
    "mailgun": MailgunChannel,
    "gmail": GmailChannel,
}


def channel_class(provider: str) -> Any:
    """The adapter class registered as ``provider``; ``ConfigError`` when there is none."""
    try:
        return CHANNELS[provider]
    except KeyError:
        known = ", ".join(sorted(CHANNELS))
        raise ConfigError(
            f"unknown channel provider {provider!r} (known: {known})", field="provider"
        ) from None


def build_channel(provider: str, settings: Mapping[str, Any], http: HttpClient) -> Channel:
    """Validate ``settings`` with the provider's ``Config`` and build the channel.

    A validation failure becomes a ``ConfigError`` naming the provider and the field;
    the offending value is never repeated in the message (it may be a secret).
    """
    cls = channel_class(provider)
    try:
        config = cls.Config.model_validate(dict(settings))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        problems = "; ".join(_describe_error(err) for err in exc.errors())
        raise ConfigError(f"channel {provider!r}: {problems}", field=field) from None
    channel: Channel = cls(config, http)
    return channel


def _describe_error(err: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        message = "unknown setting"
    elif err.get("type") == "missing":
        message = "required"
    return f"{where}: {message}" if where else message


def describe(provider: str) -> dict[str, Any]:
    """What ``orderbell channels`` shows for a provider: metadata and its settings."""
    cls = channel_class(provider)
    secret = set(cls.secret_fields)
    fields = []
    for name, info in cls.Config.model_fields.items():
        default = None if info.default is PydanticUndefined else info.default
        if isinstance(default, tuple):
            default = list(default)
        fields.append(
            {
                "name": name,
                "type": _type_name(info.annotation),
                "required": info.is_required(),
                "secret": name in secret,
                "default": None if name in secret else _plain(default),
                "description": info.description or "",
            }
        )
    return {
        "provider": provider,
        "title": cls.title,
        "family": str(cls.family),
        "docs_url": cls.docs_url,
        "max_body_chars": cls.max_body_chars,
        "rate_limit_per_second": cls.rate_limit_per_second,
        "fields": fields,
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list):
        return value
    return str(value)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


__all__ = ["CHANNELS", "build_channel", "channel_class", "describe"]
