"""Mailgun specifics beyond the shared contract suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.mailgun import MailgunChannel
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.mailgun import FakeMailgun, parse_multipart
from tests.fakes.process import FakeProcess


@pytest.fixture
async def fake() -> AsyncIterator[FakeMailgun]:
    async with FakeMailgun() as server:
        yield server


def settings(fake: FakeMailgun | FakeProcess, **changes: Any) -> dict[str, Any]:
    return {
        "api_key": getattr(fake, "api_key", "fake-mailgun-api-key-0001"),
        "domain": "mg.bistro.example",
        "from_email": "orders@mg.bistro.example",
        "base_url": fake.base_url,
        **changes,
    }


def mail(**kw: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": 5,
        "idempotency_key": "k",
        "to": "guest@example.com",
        "text": "Your order is ready",
        "subject": "Order #5",
    }
    values.update(kw)
    return OutboundMessage(**values)


async def test_minimal_mail_and_id_without_brackets(fake: FakeMailgun, http: HttpClient) -> None:
    result = await build_channel("mailgun", settings(fake), http).send(mail())

    assert fake.last.pairs == [
        ("from", "orders@mg.bistro.example"),
        ("to", "guest@example.com"),
        ("subject", "Order #5"),
        ("text", "Your order is ready"),
        ("v:message_id", "5"),
    ]
    assert result.provider_message_id in fake.messages
    assert result.provider_message_id.endswith("@mg.bistro.example")  # type: ignore[union-attr]
    assert "<" not in result.provider_message_id  # type: ignore[operator]
    assert result.provider_status == "queued"


async def test_all_options(fake: FakeMailgun, http: HttpClient) -> None:
    channel = build_channel(
        "mailgun",
        settings(
            fake,
            from_name="Bistro, Downtown",
            reply_to="help@bistro.example",
            tags=["order-update", "pickup"],
            test_mode=True,
        ),
        http,
    )
    await channel.send(mail(html="<p>Ready</p>", metadata={"order_id": "42"}))
    assert fake.last.pairs == [
        ("from", '"Bistro, Downtown" <orders@mg.bistro.example>'),
        ("to", "guest@example.com"),
        ("subject", "Order #5"),
        ("text", "Your order is ready"),
        ("html", "<p>Ready</p>"),
        ("h:Reply-To", "help@bistro.example"),
        ("v:message_id", "5"),
        ("v:order_id", "42"),
        ("o:tag", "order-update"),
        ("o:tag", "pickup"),
        ("o:testmode", "yes"),
    ]


async def test_html_only_and_unicode(fake: FakeMailgun, http: HttpClient) -> None:
    channel = build_channel("mailgun", settings(fake, from_name="Café Zoë"), http)
    await channel.send(mail(text="", html="<p>¡Listo! 🍕</p>", subject="Pedido ✓"))
    fields = dict(fake.last.pairs)
    assert fields["html"] == "<p>¡Listo! 🍕</p>"
    assert fields["subject"] == "Pedido ✓"
    assert "text" not in fields
    assert fields["from"].endswith("<orders@mg.bistro.example>")


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"header:X-Note": "a\r\nBcc: evil@example.com"}, "line break"),
        ({"header:Bad Name": "x"}, "invalid email header"),
        ({"note": "x" * 17000}, "16 KB"),
    ],
)
async def test_unsafe_or_oversized_options_fail_before_any_request(
    fake: FakeMailgun, http: HttpClient, metadata: dict[str, str], match: str
) -> None:
    with pytest.raises(PermanentSendError, match=match):
        await build_channel("mailgun", settings(fake), http).send(mail(metadata=metadata))
    assert fake.requests == []


async def test_429_delay_from_the_message(fake: FakeMailgun, http: HttpClient) -> None:
    fake.fail_next(1, 429)  # "... try again after 120 seconds", no Retry-After header
    with pytest.raises(TransientSendError) as caught:
        await build_channel("mailgun", settings(fake), http).send(mail())
    assert caught.value.retry_after == 120.0


async def test_forbidden_plain_text_is_a_401(fake: FakeMailgun, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await build_channel("mailgun", settings(fake, api_key="key-nope"), http).send(mail())
    assert caught.value.http_status == 401
    assert str(caught.value) == "mailgun answered HTTP 401: Forbidden"


async def test_unknown_domain_is_permanent(fake: FakeMailgun, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError, match="Domain not found"):
        await build_channel("mailgun", settings(fake, domain="other.example"), http).send(mail())


def test_region_picks_the_endpoint() -> None:
    http = HttpClient()
    base = {"api_key": "k", "domain": "mg.bistro.example", "from_email": "o@mg.bistro.example"}
    us = build_channel("mailgun", base, http)
    eu = build_channel("mailgun", {**base, "region": "eu"}, http)
    assert isinstance(us, MailgunChannel) and isinstance(eu, MailgunChannel)
    assert us.url == "https://api.mailgun.net/v3/mg.bistro.example/messages"
    assert eu.url == "https://api.eu.mailgun.net/v3/mg.bistro.example/messages"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"domain": "not a domain"}, "domain"),
        ({"from_email": "orders"}, "from_email"),
        ({"tags": ["a", "b", "c", "d"]}, "tags"),
        ({"tags": ["ümlaut"]}, "tags"),
        ({"region": "ap"}, "region"),
    ],
)
def test_bad_settings(changes: dict[str, Any], field: str) -> None:
    base = {"api_key": "k", "domain": "mg.bistro.example", "from_email": "o@mg.bistro.example"}
    with pytest.raises(ConfigError) as caught:
        build_channel("mailgun", {**base, **changes}, HttpClient())
    assert caught.value.field == field


def test_fake_parses_multipart_as_mailgun_reads_it() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="to"\r\n\r\na@b.example\r\n'
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b'Content-Disposition: form-data; name="subject"\r\n\r\nCaf\xc3\xa9\r\n--b--\r\n'
    )
    assert parse_multipart("multipart/form-data; boundary=b", body) == [
        ("to", "a@b.example"),
        ("subject", "Café"),
    ]


def test_fake_serves_from_a_thread() -> None:
    with FakeMailgun() as fake:

        async def go() -> None:
            async with HttpClient() as http:
                await build_channel("mailgun", settings(fake), http).send(mail())

        asyncio.run(go())
        assert fake.last.status == 200


async def test_fake_serves_as_a_process(http: HttpClient) -> None:
    with FakeProcess("mailgun", api_key="process-key") as proc:
        await build_channel("mailgun", settings(proc, api_key="process-key"), http).send(mail())
        (recorded,) = proc.requests()
    assert recorded["status"] == 200
    assert recorded["fields"]["to"] == "guest@example.com"
