"""The pooled HTTP client and the helpers every adapter shares."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from orderbell.channels.http import (
    HttpClient,
    HttpResponse,
    basic_auth_header,
    error_for_status,
    parse_retry_after,
    redact_contacts,
    retry_after_from_reset,
)
from orderbell.errors import PermanentSendError, TransientSendError
from tests.fakes.echo import EchoFake

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def echo() -> AsyncIterator[EchoFake]:
    async with EchoFake() as fake:
        yield fake


# ---------------------------------------------------------------------- the client


def test_importing_the_module_creates_nothing() -> None:
    code = (
        "import gc, aiohttp, orderbell.channels.http as h, orderbell.channels.registry;"
        "assert not [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession)]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_session_is_made_on_first_use_and_reused(echo: EchoFake) -> None:
    http = HttpClient()
    assert not http.started
    await http.request("GET", echo.base_url + "/a")
    first = http._session
    await http.request("GET", echo.base_url + "/b")
    assert http._session is first
    assert http.started
    await http.aclose()
    assert not http.started
    await http.aclose()  # twice is fine
    resp = await http.request("GET", echo.base_url + "/c")  # and it can start again
    assert resp.status == 200
    await http.aclose()


async def test_form_pairs_keep_order_and_repeated_names(echo: EchoFake, http: HttpClient) -> None:
    resp = await http.request(
        "POST",
        echo.base_url + "/form",
        data=[("To", "+15558675310"), ("MediaUrl", "https://a/1"), ("MediaUrl", "https://a/2")],
    )
    assert resp.status == 200
    assert echo.last.pairs == [
        ("To", "+15558675310"),
        ("MediaUrl", "https://a/1"),
        ("MediaUrl", "https://a/2"),
    ]
    assert echo.last.content_type == "application/x-www-form-urlencoded"


async def test_form_mapping_json_and_multipart(echo: EchoFake, http: HttpClient) -> None:
    await http.request("POST", echo.base_url + "/f", data={"a": "1", "b": "é"})
    assert echo.last.fields == {"a": "1", "b": "é"}

    await http.request("POST", echo.base_url + "/j", json={"n": 1, "s": "ü"})
    assert echo.last.fields == {"n": 1, "s": "ü"}
    assert echo.last.content_type == "application/json"

    form = aiohttp.FormData()
    form.add_field("file", b"abc", filename="a.txt", content_type="text/plain")
    await http.request("POST", echo.base_url + "/m", data=form)
    assert echo.last.content_type == "multipart/form-data"
    assert b"abc" in echo.last.body


async def test_headers_auth_and_response(echo: EchoFake, http: HttpClient) -> None:
    resp = await http.request(
        "GET",
        echo.base_url + "/h?x=1",
        headers={"X-Custom": "yes"},
        basic_auth=("user", "pässword"),
    )
    sent = resp.json()["headers"]
    assert sent["x-custom"] == "yes"
    assert sent["authorization"] == basic_auth_header("user", "pässword")
    assert sent["user-agent"].startswith("orderbell/")
    assert resp.headers["content-type"].startswith("application/json")
    assert all(name == name.lower() for name in resp.headers)
    assert resp.json()["query"] == "x=1"
    assert '"path":"/h"' in resp.text()
    assert resp.ok


async def test_redirects_are_not_followed(echo: EchoFake, http: HttpClient) -> None:
    echo.fail_next(1, 302, body="", headers={"Location": echo.base_url + "/elsewhere"})
    resp = await http.request("POST", echo.base_url + "/r", data={"a": "1"})
    assert resp.status == 302
    assert [r.path for r in echo.requests] == ["/r"]


async def test_per_call_timeout_overrides_the_default(echo: EchoFake) -> None:
    echo.delay_next(1, 1.0)
    async with HttpClient(timeout=5.0) as http:
        with pytest.raises(TransientSendError, match=r"within 0\.2 s"):
            await http.request("GET", echo.base_url + "/slow", timeout=0.2)


async def test_default_timeout_applies(echo: EchoFake) -> None:
    echo.delay_next(1, 1.0)
    async with HttpClient(timeout=0.2) as http:
        with pytest.raises(TransientSendError, match=r"within 0\.2 s"):
            await http.request("GET", echo.base_url + "/slow")


@pytest.mark.parametrize("url", ["not a url", "http://", "ftp://example.com/x"])
async def test_unusable_url_is_permanent(http: HttpClient, url: str) -> None:
    with pytest.raises(PermanentSendError):
        await http.request("GET", url)


async def test_error_messages_name_the_host_never_the_path(http: HttpClient) -> None:
    url = "http://127.0.0.1:9/services/T000/B000/secret-webhook-token"
    with pytest.raises(TransientSendError) as caught:
        await http.request("POST", url, json={})
    assert "secret-webhook-token" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        HttpClient(timeout=0)


# ---------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("Sat, 28 Nov 2026 12:00:30 GMT", 30.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),  # already past
        ("soon", None),
        ("", None),
        ("nan", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_from_reset_epoch() -> None:
    assert retry_after_from_reset("1000", now=990.0) == 10.0
    assert retry_after_from_reset("900", now=990.0) == 0.0
    assert retry_after_from_reset("x", now=990.0) is None
    assert retry_after_from_reset(None) is None


# ---------------------------------------------------------------------- status -> error


def _resp(status: int, **headers: str) -> HttpResponse:
    return HttpResponse(status=status, headers=headers, body=b"")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentSendError),
        (401, PermanentSendError),
        (403, PermanentSendError),
        (404, PermanentSendError),
        (413, PermanentSendError),
        (422, PermanentSendError),
        (302, PermanentSendError),
        (408, TransientSendError),
        (425, TransientSendError),
        (429, TransientSendError),
        (500, TransientSendError),
        (502, TransientSendError),
        (503, TransientSendError),
    ],
)
def test_error_for_status(status: int, kind: type) -> None:
    err = error_for_status(_resp(status), "acme", code="E1", detail="nope")
    assert type(err) is kind
    assert err.http_status == status
    assert err.code == "E1"
    assert str(err) == f"acme answered HTTP {status} (code E1): nope"


def test_error_for_status_reads_retry_after() -> None:
    err = error_for_status(_resp(503, **{"retry-after": "42"}), "acme", code=None, detail="")
    assert isinstance(err, TransientSendError)
    assert err.retry_after == 42.0
    assert str(err) == "acme answered HTTP 503"


def test_error_for_status_explicit_retry_after_wins() -> None:
    err = error_for_status(
        _resp(429, **{"retry-after": "42"}), "acme", code=None, detail="", retry_after=3.0
    )
    assert isinstance(err, TransientSendError)
    assert err.retry_after == 3.0


def test_error_for_status_masks_contacts_and_shortens() -> None:
    detail = "The 'To' number +15558675310 (guest@example.com) is invalid. " + "x" * 500
    err = error_for_status(_resp(400), "acme", code=None, detail=detail)
    assert "+15558675310" not in str(err)
    assert "guest@example.com" not in str(err)
    assert "+*********10" in str(err)
    assert "g***@example.com" in str(err)
    assert len(str(err)) < 400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +15558675310 now", "call +*********10 now"),
        ("call +1 (555) 867-5310", "call +*********10"),
        ("5558675310 is invalid", "********10 is invalid"),
        ("mail j.doe+tag@mail.example.co.uk", "mail j***@mail.example.co.uk"),
        ("https://www.twilio.com/docs/errors/21211", "https://www.twilio.com/docs/errors/21211"),
        ("error 21211 at 2026-11-28 12:00", "error 21211 at 2026-11-28 12:00"),
        ("", ""),
    ],
)
def test_redact_contacts(text: str, expected: str) -> None:
    assert redact_contacts(text) == expected


async def test_invalid_url_message_hides_the_url(http: HttpClient) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await http.request("POST", "http://hooks.example:99999/T0/secret-token", json={})
    assert "secret-token" not in str(caught.value)
