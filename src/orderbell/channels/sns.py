"""Amazon SNS ``Publish`` through the Query API: SMS to a phone number, or a topic.

``POST {base_url}/`` (default ``https://sns.{region}.amazonaws.com/``), form-encoded
``Action=Publish&Version=2010-03-31&PhoneNumber=+1...|TopicArn=arn:...&Message=...``
plus ``MessageAttributes.entry.N.{Name,Value.DataType,Value.StringValue}`` (for SMS:
``AWS.SNS.SMS.SMSType`` = ``Transactional``, ``AWS.SNS.SMS.SenderID``,
``AWS.MM.SMS.OriginationNumber``), signed with AWS Signature Version 4.

Signing uses botocore's ``SigV4Auth`` over an ``AWSRequest``: botocore is the AWS SDK's
own, actively maintained core, so the canonical request, scope and key derivation are
AWS's, not ours (``aws-requests-auth`` has had no release since 2020, and
``requests-aws4auth`` is built around ``requests`` objects). The body we sign is exactly
the bytes ``HttpClient`` sends (``urlencode`` of the same pairs); the fake SNS recomputes
the signature from what it received, so any drift fails the tests. Without an
``access_key_id`` the credentials come from botocore's default chain (environment,
shared config, container or instance role), resolved and refreshed in a worker thread.
botocore is imported when a channel is built, not when this module is imported.

``200`` answers ``<PublishResponse><PublishResult><MessageId>`` (and ``SequenceNumber``
on FIFO topics). Errors are ``<ErrorResponse><Error><Type/><Code/><Message/></Error>``:
``Throttled`` (429), ``Throttling``/``ThrottlingException``, ``KMSThrottling`` and
``InternalError`` (500) are transient; ``InvalidParameter``, ``ParameterValueInvalid``,
``AuthorizationError``, ``NotFound``, signature and credential errors (403) permanent.

Opt-outs: a number that replied STOP is on the AWS account's opt-out list, and SNS drops
what is published to it without an error. With ``check_opt_out`` the SMS channel asks
``CheckIfPhoneNumberIsOptedOut`` first and, for such a number, refuses with
``recipient_opted_out`` so the engine records the opt-out in the consent ledger.

Only FIFO topics deduplicate: there, ``MessageDeduplicationId`` is derived from our
idempotency key, so a retried publish is not delivered twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self
from urllib.parse import urlencode

from pydantic import Field, SecretStr, field_validator, model_validator

from orderbell.channels._support import HttpUrl
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError, SendError, TransientSendError

if TYPE_CHECKING:
    from botocore.credentials import Credentials

API_VERSION = "2010-03-31"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
TOPIC_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
)
SENDER_ID_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")
ATTRIBUTE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
MAX_SMS_CHARS = 1600
MAX_MESSAGE_BYTES = 256 * 1024
MAX_SUBJECT_CHARS = 99
MAX_ATTRIBUTES = 10
#: error codes worth retrying whatever the HTTP status says
TRANSIENT_CODES = frozenset(
    {
        "Throttled",
        "Throttling",
        "ThrottlingException",
        "KMSThrottling",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestExpired",
    }
)


def default_endpoint(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sns.{region}.{suffix}"


class _SnsConfig(ChannelConfig):
    region: str = Field(description="AWS region of the SNS endpoint, e.g. us-east-1")
    access_key_id: str | None = Field(
        default=None,
        pattern=r"^[A-Z0-9]{16,128}$",
        description="IAM access key id; unset: botocore's default chain (env, role, ...)",
    )
    secret_access_key: SecretStr | None = Field(
        default=None, description="secret of that access key"
    )
    session_token: SecretStr | None = Field(
        default=None, description="session token, for temporary credentials"
    )
    base_url: HttpUrl | None = Field(
        default=None,
        description="endpoint; default https://sns.<region>.amazonaws.com; a fake in tests",
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not REGION_RE.match(value):
            raise ValueError("must be an AWS region such as us-east-1")
        return value

    @model_validator(mode="after")
    def _key_pair(self) -> Self:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        return self


class SnsSmsConfig(_SnsConfig):
    sms_type: Literal["Transactional", "Promotional"] = Field(
        default="Transactional", description="AWS.SNS.SMS.SMSType: Transactional for orders"
    )
    sender_id: str | None = Field(
        default=None, description="alphanumeric sender id (1-11 characters) where supported"
    )
    check_opt_out: bool = Field(
        default=False,
        description="ask SNS (CheckIfPhoneNumberIsOptedOut) before each publish whether the "
        "number replied STOP to this AWS account; SNS drops such messages without a word, "
        "so this is how the opt-out reaches the consent ledger. One more API call per SMS "
        "and the sns:CheckIfPhoneNumberIsOptedOut permission",
    )
    origination_number: str | None = Field(
        default=None, description="origination number in E.164 (or a short code) to send from"
    )

    @field_validator("sender_id")
    @classmethod
    def _sender_id(cls, value: str | None) -> str | None:
        if value is not None and not SENDER_ID_RE.match(value):
            raise ValueError("must be 1-11 letters and digits, at least one letter")
        return value

    @field_validator("origination_number")
    @classmethod
    def _origination(cls, value: str | None) -> str | None:
        if value is not None and not (E164_RE.match(value) or re.fullmatch(r"\d{5,6}", value)):
            raise ValueError("must be an E.164 number or a short code")
        return value


class SnsTopicConfig(_SnsConfig):
    topic_arn: str = Field(description="topic to publish to, in the same region")
    family: ChannelFamily = Field(
        default=ChannelFamily.EMAIL,
        description="what the topic's subscribers get, for the rules: email, sms, chat, ...",
    )
    message_group_id: str = Field(
        default="orderbell",
        min_length=1,
        max_length=128,
        description="FIFO topics only: group when the message has no order_id metadata",
    )

    @model_validator(mode="after")
    def _same_region(self) -> Self:
        match = TOPIC_ARN_RE.match(self.topic_arn)
        if not match:
            raise ValueError("topic_arn must be an SNS topic ARN (arn:aws:sns:region:account:name)")
        if match.group("region") != self.region:
            raise ValueError("topic_arn is in another region: SNS publishes only within one")
        return self


class _SnsPublisher:
    """Signs and sends one ``Publish``; the two channel classes build its parameters."""

    provider: ClassVar[str]
    config: _SnsConfig

    def _setup(self, config: _SnsConfig, http: HttpClient) -> None:
        self.http = http
        self.url = f"{config.base_url or default_endpoint(config.region)}/"
        # Imported here, when a channel is built: botocore takes a while to import.
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials as BotoCredentials

        self._sigv4 = SigV4Auth
        self._aws_request = AWSRequest
        self._static: Credentials | None = None
        self._chain: Any = None
        if config.access_key_id and config.secret_access_key:
            token = config.session_token.get_secret_value() if config.session_token else None
            self._static = BotoCredentials(
                config.access_key_id, config.secret_access_key.get_secret_value(), token
            )
        self._credentials_class = BotoCredentials

    async def _credentials(self) -> Credentials:
        if self._static is not None:
            return self._static
        frozen = await asyncio.to_thread(self._frozen_chain_credentials)
        return self._credentials_class(frozen.access_key, frozen.secret_key, frozen.token)

    def _frozen_chain_credentials(self) -> Any:
        """botocore's default credential chain, in a worker thread (it may do I/O)."""
        if self._chain is None:
            import botocore.session

            self._chain = botocore.session.get_session().get_credentials()
            if type(self._chain) is self._credentials_class:
                self._static = self._chain  # plain keys (environment, profile): no refresh
        if self._chain is None:
            raise PermanentSendError(
                "no AWS credentials: set access_key_id and secret_access_key, or provide "
                "them through the environment or an IAM role"
            )
        return self._chain.get_frozen_credentials()

    def sign(self, body: bytes, credentials: Credentials) -> dict[str, str]:
        """SigV4 headers for a form ``body`` POSTed to the endpoint."""
        request = self._aws_request(
            method="POST", url=self.url, data=body, headers={"Content-Type": FORM_CONTENT_TYPE}
        )
        self._sigv4(credentials, "sns", self.config.region).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}

    async def publish(self, pairs: list[tuple[str, str]]) -> SendResult:
        body = urlencode(pairs).encode("ascii")  # byte for byte what HttpClient sends
        headers = self.sign(body, await self._credentials())
        resp = await self.http.request("POST", self.url, data=pairs, headers=headers)
        if resp.ok:
            result = _parse_xml(resp.body)
            message_id = _text(result, "MessageId")
            return SendResult(
                provider_message_id=message_id,
                provider_status="published" if message_id else None,
                http_status=resp.status,
            )
        raise self._error(resp)

    def _error(self, resp: HttpResponse) -> SendError:
        root = _parse_xml(resp.body)
        code = _text(root, "Code")
        detail = _text(root, "Message") or ""
        if root is None and resp.body:
            detail = resp.text()[:200]
        error = error_for_status(resp, self.provider, code=code, detail=detail)
        if code in TRANSIENT_CODES and isinstance(error, PermanentSendError):
            return TransientSendError(str(error), code=code, http_status=resp.status)
        return error


def _parse_xml(body: bytes) -> ET.Element | None:
    if not body:
        return None
    try:
        # Answers of the configured SNS endpoint only; the bundled expat (>= 2.4.1) refuses
        # entity-expansion bombs, and the document is a few hundred bytes.
        return ET.fromstring(body)  # noqa: S314
    except ET.ParseError:
        return None


def _text(root: ET.Element | None, tag: str) -> str | None:
    if root is None:
        return None
    found = root.find(f".//{{*}}{tag}")
    if found is None:
        found = root.find(f".//{tag}")
    text = found.text.strip() if found is not None and found.text else None
    return text or None


def _attribute_pairs(attributes: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for n, (name, value) in enumerate(attributes.items(), start=1):
        prefix = f"MessageAttributes.entry.{n}"
        pairs += [
            (f"{prefix}.Name", name),
            (f"{prefix}.Value.DataType", "String"),
            (f"{prefix}.Value.StringValue", value),
        ]
    return pairs


class SnsSmsChannel(_SnsPublisher):
    provider: ClassVar[str] = "sns"
    family: ClassVar[ChannelFamily] = ChannelFamily.SMS
    title: ClassVar[str] = "Amazon SNS (SMS to a phone number)"
    docs_url: ClassVar[str] = "https://docs.aws.amazon.com/sns/latest/api/API_Publish.html"
    Config: ClassVar[type[SnsSmsConfig]] = SnsSmsConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("secret_access_key", "session_token")
    max_body_chars: ClassVar[int | None] = MAX_SMS_CHARS
    #: None: SNS enforces account SMS quotas itself (429 Throttled when exceeded).
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: SnsSmsConfig, http: HttpClient) -> None:
        self.config = config
        self._setup(config, http)

    def params(self, message: OutboundMessage) -> list[tuple[str, str]]:
        """The Publish parameters for ``message``, after the checks SNS would make."""
        if not message.text.strip():
            raise PermanentSendError("SMS text is empty")
        if len(message.text) > MAX_SMS_CHARS:
            raise PermanentSendError(
                f"SMS text is {len(message.text)} characters; SNS accepts at most "
                f"{MAX_SMS_CHARS} per publish"
            )
        if not E164_RE.match(message.to):
            raise PermanentSendError("recipient is not an E.164 phone number")
        attributes = {"AWS.SNS.SMS.SMSType": self.config.sms_type}
        if self.config.sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = self.config.sender_id
        if self.config.origination_number:
            attributes["AWS.MM.SMS.OriginationNumber"] = self.config.origination_number
        return [
            ("Action", "Publish"),
            ("Version", API_VERSION),
            ("PhoneNumber", message.to),
            ("Message", message.text),
            *_attribute_pairs(attributes),
        ]

    async def send(self, message: OutboundMessage) -> SendResult:
        params = self.params(message)
        if self.config.check_opt_out and await self.opted_out(message.to):
            error = PermanentSendError(
                "the recipient replied STOP to this AWS account's SMS "
                "(CheckIfPhoneNumberIsOptedOut); SNS would drop the message",
                code="OptedOut",
            )
            error.recipient_opted_out = True
            raise error
        return await self.publish(params)

    async def opted_out(self, number: str) -> bool:
        """``CheckIfPhoneNumberIsOptedOut``: whether SNS keeps ``number`` on the account's
        opt-out list."""
        pairs = [
            ("Action", "CheckIfPhoneNumberIsOptedOut"),
            ("Version", API_VERSION),
            ("phoneNumber", number),
        ]
        body = urlencode(pairs).encode("ascii")
        headers = self.sign(body, await self._credentials())
        resp = await self.http.request("POST", self.url, data=pairs, headers=headers)
        if not resp.ok:
            raise self._error(resp)
        return (_text(_parse_xml(resp.body), "isOptedOut") or "").lower() == "true"


class SnsTopicChannel(_SnsPublisher):
    """Publishes to a topic whose subscribers (email, SMS, chat webhooks, queues) are staff.

    ``family`` is EMAIL on the class; an instance takes its configured ``family`` (the
    outbox does the same). ``message.to`` is not used: the topic is the destination.
    ``message_id`` and the metadata (``order_id``, ...) become String message attributes,
    so subscriptions can filter on them.
    """

    provider: ClassVar[str] = "sns_topic"
    family: ClassVar[ChannelFamily] = ChannelFamily.EMAIL
    families: ClassVar[tuple[ChannelFamily, ...]] = (
        ChannelFamily.EMAIL,
        ChannelFamily.SMS,
        ChannelFamily.CHAT,
        ChannelFamily.INCIDENT,
    )
    title: ClassVar[str] = "Amazon SNS (publish to a topic)"
    docs_url: ClassVar[str] = "https://docs.aws.amazon.com/sns/latest/api/API_Publish.html"
    Config: ClassVar[type[SnsTopicConfig]] = SnsTopicConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("secret_access_key", "session_token")
    max_body_chars: ClassVar[int | None] = None
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: SnsTopicConfig, http: HttpClient) -> None:
        self.config = config
        self.family = config.family  # type: ignore[misc]
        self.fifo = config.topic_arn.endswith(".fifo")
        self._setup(config, http)

    def params(self, message: OutboundMessage) -> list[tuple[str, str]]:
        """The Publish parameters for ``message``, after the checks SNS would make."""
        if not message.text.strip():
            raise PermanentSendError("message text is empty")
        if len(message.text.encode()) > MAX_MESSAGE_BYTES:
            raise PermanentSendError("SNS messages are limited to 256 KB")
        params = [
            ("Action", "Publish"),
            ("Version", API_VERSION),
            ("TopicArn", self.config.topic_arn),
            ("Message", message.text),
        ]
        subject = _subject(message.subject)
        if subject:
            params.append(("Subject", subject))
        attributes = {"message_id": str(message.message_id)}
        for key, value in message.metadata.items():
            if len(attributes) >= MAX_ATTRIBUTES:
                break
            if ATTRIBUTE_NAME_RE.match(key) and not key.lower().startswith(("aws.", "amazon.")):
                if str(value):
                    attributes.setdefault(key, str(value))
        params += _attribute_pairs(attributes)
        if self.fifo:
            group = message.metadata.get("order_id") or self.config.message_group_id
            params.append(("MessageGroupId", str(group)[:128]))
            digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()
            params.append(("MessageDeduplicationId", digest))
        return params

    async def send(self, message: OutboundMessage) -> SendResult:
        return await self.publish(self.params(message))


def _subject(subject: str | None) -> str | None:
    """SNS's Subject rules: ASCII, no line breaks or control characters, < 100 chars."""
    if not subject:
        return None
    ascii_only = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode()
    printable = "".join(ch if ch.isprintable() else " " for ch in ascii_only)
    cleaned = " ".join(printable.split())[:MAX_SUBJECT_CHARS].strip()
    return cleaned or None


__all__ = ["SnsSmsChannel", "SnsSmsConfig", "SnsTopicChannel", "SnsTopicConfig"]
