"""The table the provider contract suite runs over: one ``ProviderCase`` per provider.

Adding a provider to the suite is adding a case: its fake, the settings that point the
channel at it, a good message and what the fake must have received, an error the
provider answers with (and the code we must carry), settings the fake must refuse,
a message refused before any request, and raw requests the fake must refuse.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orderbell.channels.base import OutboundMessage, SendResult
from orderbell.channels.http import HttpResponse
from tests.fakes.harness import FakeServer, RecordedRequest
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio

CALLBACK_URL = "https://orderbell.example/v1/callbacks/twilio_sms/7"


@dataclass(frozen=True)
class BadRequest:
    """A raw request the fake must refuse, as the real API would."""

    label: str
    #: keyword arguments for ``HttpClient.request`` given the fake (url is base_url + path)
    build: Callable[[Any], dict[str, Any]]
    status: int
    #: the provider's error code (Twilio) or error field (SendGrid) the fake answers with
    code: Any


@dataclass(frozen=True)
class ProviderCase:
    provider: str
    fake: Callable[[], FakeServer]
    settings: Callable[[Any], dict[str, Any]]
    message: OutboundMessage
    check_request: Callable[[RecordedRequest, OutboundMessage, Any], None]
    check_result: Callable[[SendResult, Any], None]
    #: an error the provider answers with: (status, body, code we must carry)
    permanent: tuple[int, Any, str | None]
    #: settings overrides with wrong credentials, which the fake must answer 401
    wrong_credentials: dict[str, Any]
    #: a message refused before any request is made
    refused_locally: OutboundMessage
    #: reads the provider's code (or field) out of an error answer
    error_code_of: Callable[[HttpResponse], Any]
    bad_requests: list[BadRequest] = field(default_factory=list)

    def __str__(self) -> str:
        return self.provider


# ---------------------------------------------------------------------- Twilio SMS


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _twilio_check(rec: RecordedRequest, message: OutboundMessage, fake: FakeTwilio) -> None:
    assert rec.method == "POST"
    assert rec.path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    assert rec.headers["authorization"] == _basic(fake.account_sid, fake.auth_token)
    assert rec.content_type == "application/x-www-form-urlencoded"
    assert rec.pairs == [
        ("To", message.to),
        ("From", "+15017122661"),
        ("Body", message.text),
        ("StatusCallback", CALLBACK_URL),
    ]


def _twilio_result(result: SendResult, fake: FakeTwilio) -> None:
    assert result.provider_message_id in fake.messages
    assert result.provider_message_id.startswith("SM")
    assert len(result.provider_message_id) == 34
    assert result.provider_status == "queued"
    assert result.http_status == 201


def _twilio_form(fake: FakeTwilio, pairs: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
        "data": pairs,
        "basic_auth": (fake.account_sid, fake.auth_token),
        **extra,
    }


_GOOD_SMS = [("To", "+15558675310"), ("From", "+15017122661"), ("Body", "Order #123 is ready")]

TWILIO_BAD_REQUESTS = [
    BadRequest(
        "wrong auth token",
        lambda f: {**_twilio_form(f, _GOOD_SMS), "basic_auth": (f.account_sid, "nope")},
        401,
        20003,
    ),
    BadRequest(
        "no credentials", lambda f: {**_twilio_form(f, _GOOD_SMS), "basic_auth": None}, 401, 20003
    ),
    BadRequest(
        "another account's path",
        lambda f: {
            **_twilio_form(f, _GOOD_SMS),
            "path": f"/2010-04-01/Accounts/AC{'f' * 32}/Messages.json",
        },
        401,
        20003,
    ),
    BadRequest(
        "GET instead of POST",
        lambda f: {**_twilio_form(f, _GOOD_SMS), "method": "GET", "data": None},
        405,
        20004,
    ),
    BadRequest(
        "unknown path",
        lambda f: {**_twilio_form(f, _GOOD_SMS), "path": "/2010-04-01/Messages.json"},
        404,
        20404,
    ),
    BadRequest("missing To", lambda f: _twilio_form(f, _GOOD_SMS[1:]), 400, 21604),
    BadRequest(
        "JSON body instead of a form",
        lambda f: {**_twilio_form(f, []), "data": None, "json": dict(_GOOD_SMS)},
        400,
        21604,
    ),
    BadRequest(
        "To not E.164", lambda f: _twilio_form(f, [("To", "555-0100"), *_GOOD_SMS[1:]]), 400, 21211
    ),
    BadRequest("no sender", lambda f: _twilio_form(f, [_GOOD_SMS[0], _GOOD_SMS[2]]), 400, 21603),
    BadRequest(
        "bad From",
        lambda f: _twilio_form(f, [_GOOD_SMS[0], ("From", "+1-not"), _GOOD_SMS[2]]),
        400,
        21212,
    ),
    BadRequest("no Body", lambda f: _twilio_form(f, _GOOD_SMS[:2]), 400, 21602),
    BadRequest(
        "Body over 1600",
        lambda f: _twilio_form(f, [*_GOOD_SMS[:2], ("Body", "x" * 1601)]),
        400,
        21617,
    ),
    BadRequest(
        "unknown parameter", lambda f: _twilio_form(f, [*_GOOD_SMS, ("Bodyy", "typo")]), 400, 70002
    ),
    BadRequest(
        "To given twice",
        lambda f: _twilio_form(f, [*_GOOD_SMS, ("To", "+15558675311")]),
        400,
        70002,
    ),
    BadRequest(
        "ValidityPeriod not an integer",
        lambda f: _twilio_form(f, [*_GOOD_SMS, ("ValidityPeriod", "soon")]),
        400,
        70002,
    ),
    BadRequest(
        "bad StatusCallback",
        lambda f: _twilio_form(f, [*_GOOD_SMS, ("StatusCallback", "ftp:/x")]),
        400,
        21609,
    ),
    BadRequest(
        "bad MessagingServiceSid",
        lambda f: _twilio_form(f, [_GOOD_SMS[0], ("MessagingServiceSid", "MG123"), _GOOD_SMS[2]]),
        400,
        21701,
    ),
]


def _twilio_code(resp: HttpResponse) -> Any:
    return resp.json()["code"]


TWILIO = ProviderCase(
    provider="twilio_sms",
    fake=FakeTwilio,
    settings=lambda fake: {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "from_number": "+15017122661",
        "base_url": fake.base_url,
    },
    message=OutboundMessage(
        message_id=7,
        idempotency_key="order-1:ready:guest:sms",
        to="+15558675310",
        text="Order #123 is ready for pickup",
        status_callback_url=CALLBACK_URL,
    ),
    check_request=_twilio_check,
    check_result=_twilio_result,
    permanent=(
        400,
        {
            "code": 21211,
            "message": "The 'To' number +15558675310 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400,
        },
        "21211",
    ),
    wrong_credentials={"auth_token": "not-the-token"},
    refused_locally=OutboundMessage(
        message_id=8, idempotency_key="k", to="+15558675310", text="x" * 1601
    ),
    error_code_of=_twilio_code,
    bad_requests=TWILIO_BAD_REQUESTS,
)


# ---------------------------------------------------------------------- SendGrid


def _sendgrid_check(rec: RecordedRequest, message: OutboundMessage, fake: FakeSendGrid) -> None:
    assert rec.method == "POST"
    assert rec.path == "/v3/mail/send"
    assert rec.headers["authorization"] == f"Bearer {fake.api_key}"
    assert rec.content_type == "application/json"
    assert rec.fields == {
        "personalizations": [
            {
                "to": [{"email": message.to}],
                "custom_args": {"message_id": str(message.message_id), "order_id": "42"},
            }
        ],
        "from": {"email": "orders@bistro.example", "name": "Bistro"},
        "subject": message.subject,
        "content": [
            {"type": "text/plain", "value": message.text},
            {"type": "text/html", "value": message.html},
        ],
        "headers": {"List-Unsubscribe": "<https://bistro.example/u/1>"},
    }


def _sendgrid_result(result: SendResult, fake: FakeSendGrid) -> None:
    assert result.provider_message_id in fake.accepted
    assert result.http_status == 202


def _sendgrid_json(fake: FakeSendGrid, body: Any, **extra: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/v3/mail/send",
        "json": body,
        "headers": {"Authorization": f"Bearer {fake.api_key}"},
        **extra,
    }


def _mail(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "guest@example.com"}]}],
        "from": {"email": "orders@bistro.example"},
        "subject": "Your order",
        "content": [{"type": "text/plain", "value": "Ready"}],
    }
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def _sendgrid_field(resp: HttpResponse) -> Any:
    return resp.json()["errors"][0]["field"]


SENDGRID_BAD_REQUESTS = [
    BadRequest("no API key", lambda f: {**_sendgrid_json(f, _mail()), "headers": {}}, 401, None),
    BadRequest(
        "wrong API key",
        lambda f: {**_sendgrid_json(f, _mail()), "headers": {"Authorization": "Bearer SG.nope"}},
        401,
        None,
    ),
    BadRequest(
        "GET instead of POST", lambda f: {**_sendgrid_json(f, None), "method": "GET"}, 405, None
    ),
    BadRequest(
        "form body", lambda f: {**_sendgrid_json(f, None), "data": {"subject": "x"}}, 400, None
    ),
    BadRequest(
        "missing personalizations",
        lambda f: _sendgrid_json(f, _mail(personalizations=None)),
        400,
        None,
    ),
    BadRequest(
        "empty personalizations",
        lambda f: _sendgrid_json(f, _mail(personalizations=[])),
        400,
        "personalizations",
    ),
    BadRequest(
        "personalization without to",
        lambda f: _sendgrid_json(f, _mail(personalizations=[{"subject": "x"}])),
        400,
        "personalizations.0",
    ),
    BadRequest("missing from", lambda f: _sendgrid_json(f, _mail(**{"from": None})), 400, None),
    BadRequest(
        "invalid from address",
        lambda f: _sendgrid_json(f, _mail(**{"from": {"email": "nobody"}})),
        400,
        "from.email",
    ),
    BadRequest(
        "invalid to address",
        lambda f: _sendgrid_json(f, _mail(personalizations=[{"to": [{"email": "nobody"}]}])),
        400,
        "personalizations.0.to.0.email",
    ),
    BadRequest("missing subject", lambda f: _sendgrid_json(f, _mail(subject=None)), 400, "subject"),
    BadRequest("no content", lambda f: _sendgrid_json(f, _mail(content=None)), 400, "content"),
    BadRequest(
        "html before plain",
        lambda f: _sendgrid_json(
            f,
            _mail(
                content=[
                    {"type": "text/html", "value": "<p>x</p>"},
                    {"type": "text/plain", "value": "x"},
                ]
            ),
        ),
        400,
        "content",
    ),
    BadRequest(
        "empty content value",
        lambda f: _sendgrid_json(f, _mail(content=[{"type": "text/plain", "value": ""}])),
        400,
        "content.0.value",
    ),
    BadRequest(
        "reserved header",
        lambda f: _sendgrid_json(f, _mail(headers={"To": "x@example.com"})),
        400,
        "headers",
    ),
    BadRequest(
        "categories not a list",
        lambda f: _sendgrid_json(f, _mail(categories="oops")),
        400,
        "categories",
    ),
]


SENDGRID = ProviderCase(
    provider="sendgrid",
    fake=FakeSendGrid,
    settings=lambda fake: {
        "api_key": fake.api_key,
        "from_email": "orders@bistro.example",
        "from_name": "Bistro",
        "base_url": fake.base_url,
    },
    message=OutboundMessage(
        message_id=11,
        idempotency_key="order-1:ready:guest:email",
        to="guest@example.com",
        text="Your order #123 is ready",
        html="<p>Your order <b>#123</b> is ready</p>",
        subject="Order #123 is ready",
        metadata={"order_id": "42", "header:List-Unsubscribe": "<https://bistro.example/u/1>"},
    ),
    check_request=_sendgrid_check,
    check_result=_sendgrid_result,
    permanent=(
        403,
        {
            "errors": [
                {
                    "message": "The from address does not match a verified Sender Identity.",
                    "field": "from",
                    "help": None,
                }
            ]
        },
        None,
    ),
    wrong_credentials={"api_key": "SG.revoked"},
    refused_locally=OutboundMessage(
        message_id=12, idempotency_key="k", to="guest@example.com", text="no subject"
    ),
    error_code_of=_sendgrid_field,
    bad_requests=SENDGRID_BAD_REQUESTS,
)

CASES = [TWILIO, SENDGRID]
BAD_REQUESTS = [(case, bad) for case in CASES for bad in case.bad_requests]
