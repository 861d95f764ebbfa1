"""Intercom specifics: in-app vs email, rate-limit reset, unknown contact."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import PermanentSendError, TransientSendError
from tests.fakes.intercom import FakeIntercom

CONTACT = "536e564f316c83104c000020"


@pytest.fixture
async def fake() -> AsyncIterator[FakeIntercom]:
    async with FakeIntercom() as server:
        yield server


def channel(fake: FakeIntercom, http: HttpClient, **changes: Any) -> Any:
    settings = {
        "access_token": fake.access_token,
        "admin_id": fake.admin_id,
        "base_url": fake.base_url,
    }
    return build_channel("intercom", {**settings, **changes}, http)


def msg(**kw: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": 1,
        "idempotency_key": "k",
        "to": CONTACT,
        "text": "Ready",
    }
    return OutboundMessage(**{**values, **kw})


async def test_email_message(fake: FakeIntercom, http: HttpClient) -> None:
    ch = channel(fake, http, message_type="email", recipient_type="lead")
    await ch.send(msg(subject="Order #5", html="<p>Ready</p>"))
    assert fake.last.fields == {
        "message_type": "email",
        "subject": "Order #5",
        "body": "<p>Ready</p>",
        "template": "plain",
        "from": {"type": "admin", "id": fake.admin_id},
        "to": {"type": "lead", "id": CONTACT},
    }


async def test_email_without_subject_is_refused(fake: FakeIntercom, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError, match="subject"):
        await channel(fake, http, message_type="email").send(msg())
    assert fake.requests == []


async def test_unknown_contact_is_permanent(fake: FakeIntercom, http: HttpClient) -> None:
    fake.contacts = {"someone-else"}
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.code == "not_found"
    assert caught.value.http_status == 404


async def test_rate_limit_waits_until_the_reset(fake: FakeIntercom, http: HttpClient) -> None:
    reset = int(time.time()) + 8
    fake.fail_next(1, 429, headers={"X-RateLimit-Reset": str(reset), "X-RateLimit-Remaining": "0"})
    with pytest.raises(TransientSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.retry_after is not None and 6 <= caught.value.retry_after <= 9


async def test_version_header(fake: FakeIntercom, http: HttpClient) -> None:
    await channel(fake, http, api_version="2.11").send(msg())
    assert fake.last.headers["intercom-version"] == "2.11"
