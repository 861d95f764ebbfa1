"""Messenger Send API specifics: messaging types, the POST_PURCHASE_UPDATE tag, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import PermanentSendError, TransientSendError
from tests.fakes.messenger import FakeMessenger
from tests.fakes.whatsapp import graph_error_body

PSID = "6284012345678901"


@pytest.fixture
async def fake() -> AsyncIterator[FakeMessenger]:
    async with FakeMessenger() as server:
        yield server


def channel(fake: FakeMessenger, http: HttpClient, **changes: Any) -> Any:
    settings = {
        "page_access_token": fake.page_token,
        "page_id": fake.page_id,
        "base_url": fake.base_url,
        **changes,
    }
    return build_channel("messenger", settings, http)


def msg(**metadata: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=1, idempotency_key="k", to=PSID, text="Order #123 is out", metadata=metadata
    )


async def test_closed_window_sends_a_post_purchase_update_tag(
    fake: FakeMessenger, http: HttpClient
) -> None:
    fake.closed_windows.add(PSID)
    result = await channel(fake, http).send(msg(conversation_window="closed"))
    assert fake.last.fields == {
        "recipient": {"id": PSID},
        "messaging_type": "MESSAGE_TAG",
        "tag": "POST_PURCHASE_UPDATE",
        "message": {"text": "Order #123 is out"},
    }
    assert result.provider_message_id in fake.sent


async def test_untagged_message_outside_the_window_is_refused_with_meta_code(
    fake: FakeMessenger, http: HttpClient
) -> None:
    fake.closed_windows.add(PSID)
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.code == "10/2018278"


async def test_update_messaging_type_inside_the_window(
    fake: FakeMessenger, http: HttpClient
) -> None:
    await channel(fake, http, in_window_type="UPDATE").send(msg(conversation_window="open"))
    assert fake.last.fields["messaging_type"] == "UPDATE"
    assert "tag" not in fake.last.fields


@pytest.mark.parametrize(("code", "subcode"), [(1200, None), (613, None), (2, None)])
async def test_temporary_failures_are_transient(
    fake: FakeMessenger, http: HttpClient, code: int, subcode: int | None
) -> None:
    fake.fail_next(1, 400, body=graph_error_body(code, "Temporary send message failure"))
    with pytest.raises(TransientSendError):
        await channel(fake, http).send(msg())


async def test_unavailable_person_and_unknown_psid_are_permanent(
    fake: FakeMessenger, http: HttpClient
) -> None:
    fake.unavailable.add(PSID)
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.code == "551/1545041"
    fake.unavailable.clear()
    fake.known_psids = {"1111111111"}
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.code == "100/2018001"


async def test_token_is_url_encoded_and_never_in_errors(
    fake: FakeMessenger, http: HttpClient
) -> None:
    fake.page_token = "EAA+tok/en=="
    ch = channel(fake, http, page_access_token="EAA+tok/en==")
    await ch.send(msg())
    assert parse_qs(fake.last.query_string) == {"access_token": ["EAA+tok/en=="]}
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http, page_access_token="EAA+wrong").send(msg())
    assert "EAA+wrong" not in str(caught.value)
    assert caught.value.code == "190"


async def test_recipient_must_be_a_psid(fake: FakeMessenger, http: HttpClient) -> None:
    bad = OutboundMessage(message_id=1, idempotency_key="k", to="+15558675310", text="x")
    with pytest.raises(PermanentSendError, match="page-scoped id"):
        await channel(fake, http).send(bad)
    assert fake.requests == []
