"""Twilio Programmable Voice: a phone call that reads the message out, with inline TwiML.

``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Calls.json``, form-encoded, HTTP Basic
auth (Account SID : Auth Token), with ``To``, ``From`` and ``Twiml`` =
``<Response><Say language="es-MX">text</Say></Response>``: Twilio speaks the text when
the guest answers, without fetching TwiML from us. ``201`` carries the Call JSON; its
``sid`` (``CA`` + 32 hex) is what call status callbacks refer to.

The ``language`` is the guest's locale mapped to a Twilio language code (``en`` ->
``en-US``, ``es`` -> ``es-MX``, ``pt_BR`` -> ``pt-BR``, ...; override with
``languages``), and the voice, when set, must speak that language (``voices`` per
language). The text is XML-escaped by ElementTree, so ``<``, ``&`` and quotes in an order
note cannot break the document.

Twilio accepts at most 4,000 characters of ``Twiml`` (error 32018): longer documents are
refused here before any request. Errors have the Twilio shape ``{"code", "message",
"more_info", "status"}``; 429 (20429) and 5xx are transient. Calls are queued by Twilio
at the account's calls-per-second rate (1 CPS by default), not refused; there is no
idempotency key for Calls.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from orderbell.channels._support import HttpUrl
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient
from orderbell.channels.twilio_sms import post_to_twilio
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
MAX_TWIML_CHARS = 4000
#: the text budget left once the markup is counted (escaping ``&<>"`` costs more)
MAX_BODY_CHARS = 3900
TWIML_TOO_LONG = "32018"

#: A bare language (what most locales carry) -> the Twilio ``<Say language>`` to use.
DEFAULT_SAY_LANGUAGES: dict[str, str] = {
    "en": "en-US",
    "es": "es-MX",
    "fr": "fr-FR",
    "de": "de-DE",
    "it": "it-IT",
    "pt": "pt-BR",
    "nl": "nl-NL",
    "ca": "ca-ES",
    "da": "da-DK",
    "fi": "fi-FI",
    "nb": "nb-NO",
    "no": "nb-NO",
    "sv": "sv-SE",
    "pl": "pl-PL",
    "ru": "ru-RU",
    "ja": "ja-JP",
    "ko": "ko-KR",
    "zh": "zh-CN",
}

#: Characters XML 1.0 forbids; they would make Twilio's parser refuse the document.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def say_language(locale: str, overrides: dict[str, str], default: str) -> str:
    """The Twilio ``<Say language>`` for a guest locale (``es``, ``es_MX``, ``pt-br``)."""
    normalized = locale.strip().replace("_", "-")
    lang, _, region = normalized.partition("-")
    lang = lang.lower()
    for key in (f"{lang}-{region.upper()}" if region else None, lang):
        if key is not None:
            for name, value in overrides.items():
                if name.replace("_", "-").lower() == key.lower():
                    return value
    if region and re.fullmatch(r"[A-Za-z]{2}", region):
        return f"{lang}-{region.upper()}"
    return DEFAULT_SAY_LANGUAGES.get(lang, default)


class TwilioVoiceConfig(ChannelConfig):
    account_sid: str = Field(
        pattern=r"^AC[0-9a-fA-F]{32}$", description="Account SID (AC + 32 hex digits)"
    )
    auth_token: SecretStr = Field(min_length=1, description="Auth Token of that account")
    from_number: str = Field(
        description="caller id in E.164: a Twilio voice number or a verified caller id"
    )
    base_url: HttpUrl = Field(
        default="https://api.twilio.com", description="API root; point it at a fake in tests"
    )
    send_status_callback: bool = Field(
        default=True, description="ask Twilio to post call status events back to Order Bell"
    )
    voice: str | None = Field(
        default=None,
        description="Twilio voice, e.g. Polly.Joanna-Neural; unset: Twilio's default voice",
    )
    voices: dict[str, str] = Field(
        default_factory=dict,
        description="voice per language, e.g. {es-MX: Polly.Mia-Neural}; wins over voice",
    )
    languages: dict[str, str] = Field(
        default_factory=dict,
        description="guest locale -> Twilio Say language, e.g. {es: es-US}; over the defaults",
    )
    default_language: str = Field(
        default="en-US", description="Say language for a locale with no known mapping"
    )
    loop: int = Field(default=1, ge=1, le=5, description="how many times the message is read")
    timeout: int | None = Field(
        default=None, ge=5, le=600, description="seconds to let it ring before giving up"
    )
    machine_detection: Literal["Enable", "DetectMessageEnd"] | None = Field(
        default=None,
        description="answering-machine detection; DetectMessageEnd speaks after the beep",
    )

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        if not E164_RE.match(value):
            raise ValueError("must be an E.164 number, e.g. +15017122661")
        return value

    @field_validator("default_language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not LANGUAGE_RE.match(value):
            raise ValueError("must be a language code such as en-US")
        return value

    @field_validator("languages", "voices")
    @classmethod
    def _language_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not key or not item:
                raise ValueError("keys and values must not be empty")
        return value


class TwilioVoiceChannel:
    provider: ClassVar[str] = "twilio_voice"
    family: ClassVar[ChannelFamily] = ChannelFamily.VOICE
    title: ClassVar[str] = "Twilio Programmable Voice (call reading the message)"
    docs_url: ClassVar[str] = "https://www.twilio.com/docs/voice/api/call-resource"
    Config: ClassVar[type[TwilioVoiceConfig]] = TwilioVoiceConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("auth_token",)
    max_body_chars: ClassVar[int | None] = MAX_BODY_CHARS
    #: None: calls beyond the account's CPS are queued by Twilio, not refused.
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: TwilioVoiceConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/2010-04-01/Accounts/{config.account_sid}/Calls.json"
        self._auth = (config.account_sid, config.auth_token.get_secret_value())

    def language_for(self, locale: str) -> str:
        return say_language(locale, self.config.languages, self.config.default_language)

    def voice_for(self, language: str) -> str | None:
        lang = language.split("-", 1)[0].lower()
        for key in (language, lang):
            for name, voice in self.config.voices.items():
                if name.replace("_", "-").lower() == key.lower():
                    return voice
        return self.config.voice

    def twiml(self, message: OutboundMessage) -> str:
        """``<Response><Say ...>text</Say></Response>`` for ``message``, escaped."""
        text = _XML_INVALID.sub("", message.text).strip()
        if not text:
            raise PermanentSendError("voice message text is empty")
        language = self.language_for(message.locale)
        attributes = {"language": language}
        voice = self.voice_for(language)
        if voice:
            attributes["voice"] = voice
        if self.config.loop != 1:
            attributes["loop"] = str(self.config.loop)
        response = ET.Element("Response")
        ET.SubElement(response, "Say", attributes).text = text
        document = ET.tostring(response, encoding="unicode")
        if len(document) > MAX_TWIML_CHARS:
            raise PermanentSendError(
                f"the call's TwiML is {len(document)} characters; Twilio accepts at most "
                f"{MAX_TWIML_CHARS} (error {TWIML_TOO_LONG})",
                code=TWIML_TOO_LONG,
            )
        return document

    def form(self, message: OutboundMessage) -> list[tuple[str, str]]:
        """The form fields for ``message``, after the checks Twilio would make."""
        if not E164_RE.match(message.to):
            raise PermanentSendError("recipient is not an E.164 phone number")
        fields = [
            ("To", message.to),
            ("From", self.config.from_number),
            ("Twiml", self.twiml(message)),
        ]
        if self.config.send_status_callback and message.status_callback_url:
            fields.append(("StatusCallback", message.status_callback_url))
            # answered, and completed (which reports busy, no-answer and failed too)
            fields.extend(("StatusCallbackEvent", event) for event in ("answered", "completed"))
        if self.config.timeout is not None:
            fields.append(("Timeout", str(self.config.timeout)))
        if self.config.machine_detection:
            fields.append(("MachineDetection", self.config.machine_detection))
        return fields

    async def send(self, message: OutboundMessage) -> SendResult:
        return await post_to_twilio(
            self.http, self.url, self.form(message), self._auth, self.provider
        )


__all__ = ["DEFAULT_SAY_LANGUAGES", "TwilioVoiceChannel", "TwilioVoiceConfig", "say_language"]
