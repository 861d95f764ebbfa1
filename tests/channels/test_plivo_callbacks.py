"""Plivo status callbacks and inbound SMS: X-Plivo-Signature-V3 and the event mapping.

Vectors:
* V2: plivo-ruby ``spec/signature_spec.rb`` / plivo-dotnet ``TestSignature.cs`` (official):
  URL ``https://answer.url``, nonce ``12345``, token ``my_auth_token``.
* V3: Plivo publishes no V3 vector. ``V3_*`` below were computed by running the
  algorithm of plivo-python ``plivo/utils/signature_v3.py`` (``construct_post_url`` /
  ``construct_get_url`` / ``get_signature_v3``, transcribed unchanged) on these inputs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlencode

import pytest

from orderbell.channels import plivo_webhooks
from orderbell.channels.base import CallbackChannel, CallbackRequest
from orderbell.channels.http import HttpClient
from orderbell.channels.plivo import PlivoChannel, PlivoConfig
from orderbell.errors import PayloadError, SignatureError

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TOKEN = "MAXXXXXXXXXXXXXXXXXX"
NONCE = "05429567804466091622"
URL = "https://orderbell.example/v1/callbacks/plivo/9"
UUID = "db3ce55a-7f1d-11e1-8ea7-1231380bc196"
STATUS = {
    "MessageUUID": UUID,
    "Status": "delivered",
    "To": "14155550100",
    "From": "12125550123",
    "ErrorCode": "000",
}
V3_POST_WITH_QUERY = "KNtGsyeERAVkqiZlcRlHF/ISAJdEcJh9SWh8CFU+me4="
V3_POST = "M4OGRT0nF3cqUqvrzgUS5pOYyy+JobH+Xv5rzv0DNBk="
V3_GET = "nkNucM+GD6aT3Jjmmr6JGtaSaPMfsSe8/JTG20xyk3c="


def channel(**settings: Any) -> PlivoChannel:
    config = PlivoConfig(
        auth_id="MAXXXXXXXXXXXXXXXXXX", auth_token=TOKEN, src="+14155550100", **settings
    )
    return PlivoChannel(config, cast(HttpClient, None))


def post(
    fields: dict[str, str], url: str = URL, sig: str | None = "sign", **headers: str
) -> CallbackRequest:
    if sig == "sign":
        base = plivo_webhooks.base_string("POST", url, fields.items())
        sig = plivo_webhooks.expected_signature(TOKEN, base, NONCE)
    hdrs = {"content-type": "application/x-www-form-urlencoded", **headers}
    if sig is not None:
        hdrs[plivo_webhooks.SIGNATURE] = sig
        hdrs[plivo_webhooks.NONCE] = NONCE
    return CallbackRequest("POST", url, urlencode(fields).encode(), hdrs, {}, NOW)


def test_is_a_callback_channel() -> None:
    assert isinstance(channel(), CallbackChannel)


def test_official_v2_vector() -> None:
    assert (
        plivo_webhooks.expected_signature_v2("my_auth_token", "https://answer.url", "12345")
        == "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
    )


@pytest.mark.parametrize(
    "method, url, params, expected",
    [
        ("POST", URL + "?b=2&a=1", STATUS, V3_POST_WITH_QUERY),
        ("POST", URL, STATUS, V3_POST),
        ("GET", URL + "?b=2&a=1", {}, V3_GET),
    ],
)
def test_v3_vectors_from_the_sdk_algorithm(
    method: str, url: str, params: dict[str, str], expected: str
) -> None:
    base = plivo_webhooks.base_string(method, url, params.items())
    assert plivo_webhooks.expected_signature(TOKEN, base, NONCE) == expected


def test_base_string_shapes() -> None:
    assert plivo_webhooks.base_string("POST", URL + "?b=2&a=1", [("Y", "2"), ("X", "1")]) == (
        URL + "?a=1&b=2.X1Y2"
    )
    assert plivo_webhooks.base_string("POST", URL, [("X", "b"), ("X", "a")]) == URL + "?XaXb"
    assert plivo_webhooks.base_string("POST", URL + "?a=1", []) == URL + "?a=1"
    assert plivo_webhooks.base_string("POST", URL, []) == URL
    assert plivo_webhooks.base_string("GET", URL, []) == URL


def test_signed_status_callback_is_accepted_with_the_sdk_vector() -> None:
    channel().verify_callback(post(STATUS, sig=V3_POST))
    channel().verify_callback(post(STATUS, URL + "?b=2&a=1", sig=V3_POST_WITH_QUERY))


def test_one_of_several_signatures_is_enough() -> None:
    channel().verify_callback(post(STATUS, sig=f"c29tZXRoaW5nIGVsc2U=,{V3_POST}"))


@pytest.mark.parametrize("sig", [None, "", "forged", V3_POST_WITH_QUERY, V3_POST[:-2] + "A="])
def test_forged_or_missing_signature_is_refused(sig: str | None) -> None:
    with pytest.raises(SignatureError):
        channel().verify_callback(post(STATUS, sig=sig))


def test_a_changed_body_is_refused() -> None:
    request = post({**STATUS, "Status": "failed"}, sig=V3_POST)
    with pytest.raises(SignatureError):
        channel().verify_callback(request)


def test_v2_only_when_opted_in() -> None:
    v2 = plivo_webhooks.expected_signature_v2(TOKEN, URL, "777")
    headers = {plivo_webhooks.SIGNATURE_V2: v2, plivo_webhooks.NONCE_V2: "777"}
    with pytest.raises(SignatureError):
        channel().verify_callback(post(STATUS, sig=None, **headers))
    channel(accept_signature_v2=True).verify_callback(post(STATUS, sig=None, **headers))
    bad = {**headers, plivo_webhooks.SIGNATURE_V2: "forged"}
    with pytest.raises(SignatureError):
        channel(accept_signature_v2=True).verify_callback(post(STATUS, sig=None, **bad))


def test_delivered_status_becomes_a_report() -> None:
    parsed = channel().parse_callback(post(STATUS))
    (report,) = parsed.reports
    assert (report.provider_message_id, report.status, report.error_code) == (
        UUID,
        "delivered",
        None,
    )
    assert report.event_id == f"{UUID}:delivered"


@pytest.mark.parametrize(
    "status, ours",
    [
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("undelivered", "undelivered"),
        ("failed", "failed"),
    ],
)
def test_each_status_maps_to_ours(status: str, ours: str) -> None:
    (report,) = channel().parse_callback(post({**STATUS, "Status": status})).reports
    assert report.status == ours


def test_queued_is_not_reported() -> None:
    assert channel().parse_callback(post({**STATUS, "Status": "queued"})).reports == ()


@pytest.mark.parametrize(
    "code, unusable, opted_out",
    [("50", True, False), ("70", True, False), ("200", False, True), ("20", False, False)],
)
def test_error_codes(code: str, unusable: bool, opted_out: bool) -> None:
    fields = {**STATUS, "Status": "failed", "ErrorCode": code}
    (report,) = channel().parse_callback(post(fields)).reports
    assert (report.error_code, report.contact_unusable, report.opted_out) == (
        code,
        unusable,
        opted_out,
    )


def test_inbound_sms_becomes_an_inbound_message() -> None:
    fields = {
        "From": "12125550123",
        "To": "14155550100",
        "Text": "STOP",
        "Type": "sms",
        "MessageUUID": "in-1",
    }
    parsed = channel().parse_callback(post(fields))
    (msg,) = parsed.inbound
    assert (msg.provider_message_id, msg.sender, msg.recipient, msg.text) == (
        "in-1",
        "+12125550123",
        "+14155550100",
        "STOP",
    )
    assert parsed.reports == ()


@pytest.mark.parametrize(
    "fields",
    [{"Status": "delivered"}, {"MessageUUID": UUID}, {}],
)
def test_malformed_callbacks_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(PayloadError):
        channel().parse_callback(post(fields))


def test_json_body_is_refused() -> None:
    request = CallbackRequest("POST", URL, b"{}", {"content-type": "application/json"}, {}, NOW)
    with pytest.raises(PayloadError):
        channel().parse_callback(request)
