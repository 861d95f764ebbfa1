"""A strict loopback Amazon SNS (Query API, ``Publish``) that verifies SigV4 signatures.

``POST /`` with a form body. Every request must carry a valid AWS Signature Version 4:
the fake parses ``Authorization``, looks up the secret of the access key it knows and
recomputes the signature over what it received with botocore's own ``SigV4Auth``
(canonical request from the method, path, query, the *signed* headers only and the
SHA-256 of the body). Refused as AWS refuses them, with SNS's XML error document:

* no ``Authorization`` -> 403 ``MissingAuthenticationToken``; a malformed one -> 400
  ``IncompleteSignature``; an unknown access key -> 403 ``InvalidClientTokenId``; a
  wrong signature, scope (date, region, service) or missing/extra session token -> 403
  ``SignatureDoesNotMatch``; ``X-Amz-Date`` more than 15 minutes off -> 400 ``RequestExpired``
* not POST -> 405; not a form body, or no/unknown ``Action`` -> 400 ``MissingAction`` /
  ``InvalidAction``; ``Version`` not 2010-03-31 -> 400 ``InvalidParameterValue``
* a parameter the SNS service model (botocore's ``sns/2010-03-31/service-2.json``) does
  not list for ``Publish`` -> 400 ``InvalidParameter`` (stricter than AWS, so typos fail)
* no ``Message`` -> 400 ``ValidationError``; not exactly one of TopicArn / TargetArn /
  PhoneNumber -> ``InvalidParameter``; PhoneNumber not E.164, an SMS over 1,600
  characters, a message over 256 KB, a Subject that is not ASCII, has a line break or is
  100 characters or more -> ``InvalidParameter``; an unknown topic -> 404 ``NotFound``;
  a FIFO topic without MessageGroupId or MessageDeduplicationId, or either over 128
  characters -> ``InvalidParameter``
* message attributes: entries numbered from 1 without gaps, each with Name and
  Value.DataType (String, String.Array, Number or Binary, optionally with a custom
  suffix) and its value; at most 10; ``AWS.SNS.SMS.SMSType`` Transactional/Promotional,
  ``AWS.SNS.SMS.SenderID`` 1-11 letters and digits, ``AWS.MM.SMS.OriginationNumber``
  E.164 or a short code -> 400 ``ParameterValueInvalid`` otherwise

Success is ``200`` with ``<PublishResponse>`` (a UUID ``MessageId``; ``SequenceNumber``
for FIFO topics). Published messages are kept in ``published`` by MessageId.
"""

from __future__ import annotations

import hmac
import re
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, ClassVar
from xml.sax.saxutils import escape

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.loaders import Loader

from tests.fakes.harness import FakeServer, RecordedRequest

NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"
DEFAULT_ACCESS_KEY_ID = "AKIAFAKEORDERBELL001"
DEFAULT_SECRET_ACCESS_KEY = "fake/Secret+Access/Key/For/Order/Bell/0001"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_TOPICS = (
    f"arn:aws:sns:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:orderbell-staff,"
    f"arn:aws:sns:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:orderbell-staff.fifo"
)
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<date>\d{8})/(?P<region>[^/\s]+)"
    r"/(?P<service>[^/\s]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
ENTRY_RE = re.compile(
    r"^MessageAttributes\.entry\.(\d+)\.(Name|Value\.(?:DataType|StringValue|BinaryValue))$"
)
DATA_TYPE_RE = re.compile(r"^(String|String\.Array|Number|Binary)(\.[A-Za-z0-9_.-]+)?$")
MAX_SKEW = timedelta(minutes=15)
MAX_MESSAGE_BYTES = 256 * 1024
MAX_SMS_CHARS = 1600


@cache
def publish_members() -> frozenset[str]:
    """Publish's top-level parameters, from botocore's copy of the SNS service model."""
    model = Loader().load_service_model("sns", "service-2", "2010-03-31")
    input_shape = model["operations"]["Publish"]["input"]["shape"]
    return frozenset(model["shapes"][input_shape]["members"])


class SnsError(Exception):
    def __init__(self, status: int, code: str, message: str, kind: str = "Sender") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind


def error_document(code: str, message: str, kind: str = "Sender") -> str:
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )


def xml_response(document: str, status: int) -> web.Response:
    return web.Response(text=document, status=status, content_type="text/xml")


class FakeSns(FakeServer):
    name: ClassVar[str] = "sns"

    def __init__(
        self,
        *,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        session_token: str = "",
        region: str = DEFAULT_REGION,
        topics: str = DEFAULT_TOPICS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token or None
        self.region = region
        self.topics = frozenset(t.strip() for t in topics.split(",") if t.strip())
        self.members = publish_members()
        self.published: dict[str, dict[str, Any]] = {}
        #: numbers that replied STOP to this account (CheckIfPhoneNumberIsOptedOut says so)
        self.opted_out: set[str] = set()
        #: the numbers CheckIfPhoneNumberIsOptedOut was asked about, in order
        self.opt_out_checks: list[str] = []
        #: the fake's clock, for signature expiry (tests may move it)
        self.now = lambda: datetime.now(UTC)

    def add_routes(self) -> None:
        self.route("*", "/", self.query_api)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if code is None:
            code = {
                403: "AuthorizationError",
                404: "NotFound",
                405: "MethodNotAllowed",
                429: "Throttled",
                500: "InternalError",
                503: "ServiceUnavailable",
            }.get(status, "InternalFailure" if status >= 500 else "InvalidParameter")
        if message is None:
            message = {429: "Rate exceeded"}.get(status, str(code))
        kind = "Receiver" if status >= 500 else "Sender"
        return xml_response(error_document(str(code), message, kind), status)

    async def query_api(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        try:
            self.verify_signature(request, rec)
            if request.method != "POST":
                raise SnsError(405, "MethodNotAllowed", "Use POST for the Query API")
            if ("Action", "CheckIfPhoneNumberIsOptedOut") in rec.pairs:
                return self.check_opted_out(rec)
            params = self.publish_params(rec)
            message_id, sequence = self.publish(params)
        except SnsError as exc:
            return xml_response(error_document(exc.code, exc.message, exc.kind), exc.status)
        result = f"<MessageId>{message_id}</MessageId>"
        if sequence is not None:
            result += f"<SequenceNumber>{sequence}</SequenceNumber>"
        return xml_response(
            f'<PublishResponse xmlns="{NAMESPACE}"><PublishResult>{result}</PublishResult>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</PublishResponse>",
            200,
        )

    # ------------------------------------------------------------------ SigV4

    def verify_signature(self, request: web.Request, rec: RecordedRequest) -> None:
        header = rec.headers.get("authorization")
        if not header:
            raise SnsError(
                403, "MissingAuthenticationToken", "Request is missing Authentication Token"
            )
        match = AUTH_RE.match(header)
        if not match:
            raise SnsError(
                400, "IncompleteSignature", "Authorization header is not a valid SigV4 header"
            )
        if match["key"] != self.access_key_id:
            raise SnsError(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        amz_date = rec.headers.get("x-amz-date", "")
        try:
            stamp = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise SnsError(
                400, "IncompleteSignature", "X-Amz-Date is missing or malformed"
            ) from None
        if abs(self.now() - stamp) > MAX_SKEW:
            raise SnsError(400, "RequestExpired", f"Request has expired: {amz_date}")
        if match["date"] != amz_date[:8]:
            raise SnsError(
                403, "SignatureDoesNotMatch", "Credential date does not match X-Amz-Date"
            )
        if match["region"] != self.region:
            raise SnsError(
                403,
                "SignatureDoesNotMatch",
                f"Credential should be scoped to a valid region, not '{match['region']}'.",
            )
        if match["service"] != "sns":
            raise SnsError(
                403,
                "SignatureDoesNotMatch",
                f"Credential should be scoped to correct service: 'sns', not '{match['service']}'.",
            )
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            raise SnsError(403, "SignatureDoesNotMatch", "host and x-amz-date must be signed")
        token = rec.headers.get("x-amz-security-token")
        if self.session_token is not None and (
            token is None
            or "x-amz-security-token" not in signed
            or not hmac.compare_digest(token, self.session_token)
        ):
            raise SnsError(403, "SignatureDoesNotMatch", "missing or wrong session token")
        if self.session_token is None and token is not None:
            raise SnsError(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        expected = self.expected_signature(request, rec, signed, amz_date, token)
        if not hmac.compare_digest(expected, match["signature"]):
            raise SnsError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )

    def expected_signature(
        self,
        request: web.Request,
        rec: RecordedRequest,
        signed: list[str],
        amz_date: str,
        token: str | None,
    ) -> str:
        """The signature AWS would compute, with botocore, over the signed headers only."""
        headers = {name: rec.headers[name] for name in signed if name in rec.headers}
        host = headers.pop("host", request.host)
        query = f"?{rec.query_string}" if rec.query_string else ""
        scheme = "https" if request.secure else "http"
        aws = AWSRequest(
            method=rec.method,
            url=f"{scheme}://{host}{rec.path}{query}",
            data=rec.body,
            headers=headers,
        )
        aws.context["timestamp"] = amz_date
        signer = SigV4Auth(
            Credentials(self.access_key_id, self.secret_access_key, token), "sns", self.region
        )
        canonical = signer.canonical_request(aws)
        return signer.signature(signer.string_to_sign(aws, canonical), aws)  # type: ignore[no-any-return]

    # ------------------------------------------------- CheckIfPhoneNumberIsOptedOut

    def check_opted_out(self, rec: RecordedRequest) -> web.Response:
        """``phoneNumber`` (lower-case p, as in the SNS API) -> ``isOptedOut``."""
        params = dict(rec.pairs)
        if len(params) != len(rec.pairs) or set(params) != {"Action", "Version", "phoneNumber"}:
            raise SnsError(400, "InvalidParameter", f"Unexpected parameters: {sorted(params)}")
        if params["Version"] != "2010-03-31":
            raise SnsError(400, "InvalidParameterValue", "Version must be 2010-03-31")
        number = params["phoneNumber"]
        if not E164_RE.match(number):
            raise SnsError(400, "InvalidParameter", "Invalid parameter: PhoneNumber")
        self.opt_out_checks.append(number)
        answer = "true" if number in self.opted_out else "false"
        return xml_response(
            f'<CheckIfPhoneNumberIsOptedOutResponse xmlns="{NAMESPACE}">'
            "<CheckIfPhoneNumberIsOptedOutResult>"
            f"<isOptedOut>{answer}</isOptedOut>"
            "</CheckIfPhoneNumberIsOptedOutResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</CheckIfPhoneNumberIsOptedOutResponse>",
            200,
        )

    # ------------------------------------------------------------------ Publish

    def publish_params(self, rec: RecordedRequest) -> dict[str, Any]:
        if rec.content_type != "application/x-www-form-urlencoded":
            raise SnsError(400, "MissingAction", "Could not find operation: the body is not a form")
        params: dict[str, str] = {}
        for name, value in rec.pairs:
            if name in params:
                raise SnsError(400, "InvalidParameter", f"Parameter {name} given more than once")
            params[name] = value
        action = params.pop("Action", None)
        if not action:
            raise SnsError(400, "MissingAction", "Could not find operation")
        if action != "Publish":
            raise SnsError(
                400, "InvalidAction", f"Could not find operation {action} for version 2010-03-31"
            )
        if params.pop("Version", None) != "2010-03-31":
            raise SnsError(400, "InvalidParameterValue", "Version must be 2010-03-31")
        attributes: dict[int, dict[str, str]] = {}
        for name in list(params):
            entry = ENTRY_RE.match(name)
            if entry:
                attributes.setdefault(int(entry[1]), {})[entry[2]] = params.pop(name)
            elif name not in self.members:
                raise SnsError(400, "InvalidParameter", f"Unknown parameter: {name}")
        return {**params, "_attributes": self.check_attributes(attributes)}

    @staticmethod
    def check_attributes(entries: dict[int, dict[str, str]]) -> dict[str, dict[str, str]]:
        if sorted(entries) != list(range(1, len(entries) + 1)):
            raise SnsError(
                400, "InvalidParameter", "Message attribute entries must be numbered 1..N"
            )
        if len(entries) > 10:
            raise SnsError(
                400, "InvalidParameter", "Number of message attributes must be at most 10"
            )
        attributes: dict[str, dict[str, str]] = {}
        for n in sorted(entries):
            entry = entries[n]
            name, data_type = entry.get("Name"), entry.get("Value.DataType")
            if not name or not data_type:
                raise SnsError(
                    400, "InvalidParameter", f"Message attribute {n} needs Name and Value.DataType"
                )
            if not DATA_TYPE_RE.match(data_type):
                raise SnsError(
                    400,
                    "ParameterValueInvalid",
                    f"The message attribute '{name}' has an invalid message attribute type",
                )
            value = entry.get(
                "Value.BinaryValue" if data_type.startswith("Binary") else "Value.StringValue"
            )
            if not value:
                raise SnsError(
                    400,
                    "ParameterValueInvalid",
                    f"The message attribute '{name}' must contain non-empty message attribute value",
                )
            attributes[name] = {"DataType": data_type, "Value": value}
        checks = {
            "AWS.SNS.SMS.SMSType": lambda v: v in ("Transactional", "Promotional"),
            "AWS.SNS.SMS.SenderID": lambda v: re.fullmatch(r"(?=.*[A-Za-z])[A-Za-z0-9]{1,11}", v),
            "AWS.MM.SMS.OriginationNumber": lambda v: (
                E164_RE.match(v) or re.fullmatch(r"\d{5,6}", v)
            ),
        }
        for name, check in checks.items():
            if name in attributes and not check(attributes[name]["Value"]):
                raise SnsError(400, "ParameterValueInvalid", f"Value for {name} is invalid")
        return attributes

    def publish(self, params: dict[str, Any]) -> tuple[str, str | None]:
        message = params.get("Message")
        if message is None:
            raise SnsError(
                400,
                "ValidationError",
                "1 validation error detected: Value null at 'message' failed to satisfy "
                "constraint: Member must not be null",
            )
        targets = [name for name in ("TopicArn", "TargetArn", "PhoneNumber") if params.get(name)]
        if len(targets) != 1:
            raise SnsError(
                400,
                "InvalidParameter",
                "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter"
                if not targets
                else "Invalid parameter: only one of TopicArn, TargetArn, PhoneNumber may be given",
            )
        size = len(message.encode()) + sum(
            len(k) + len(v["Value"]) for k, v in params["_attributes"].items()
        )
        if size > MAX_MESSAGE_BYTES:
            raise SnsError(400, "InvalidParameter", "Invalid parameter: Message too long")
        if not message:
            raise SnsError(400, "InvalidParameter", "Invalid parameter: Empty message")
        subject = params.get("Subject")
        if subject is not None and (
            not subject
            or len(subject) >= 100
            or not subject.isascii()
            or any(not ch.isprintable() for ch in subject)
        ):
            raise SnsError(400, "InvalidParameter", "Invalid parameter: Subject")
        sequence = None
        if targets == ["PhoneNumber"]:
            phone = params["PhoneNumber"]
            if not E164_RE.match(phone):
                raise SnsError(
                    400,
                    "InvalidParameter",
                    f"Invalid parameter: PhoneNumber Reason: {phone} is not valid to publish to",
                )
            if len(message) > MAX_SMS_CHARS:
                raise SnsError(
                    400, "InvalidParameter", "Invalid parameter: Message too long for SMS"
                )
            if subject is not None:
                raise SnsError(
                    400, "InvalidParameter", "Invalid parameter: Subject is not used for SMS"
                )
        elif targets == ["TopicArn"]:
            arn = params["TopicArn"]
            if arn not in self.topics:
                raise SnsError(404, "NotFound", "Topic does not exist")
            if arn.endswith(".fifo"):
                for name in ("MessageGroupId", "MessageDeduplicationId"):
                    value = params.get(name)
                    if not value or len(value) > 128:
                        raise SnsError(
                            400,
                            "InvalidParameter",
                            f"Invalid parameter: The {name} parameter is required for FIFO topics",
                        )
                sequence = str(10**19 + len(self.published))
        message_id = str(uuid.uuid4())
        self.published[message_id] = params
        return message_id, sequence
