"""Teams specifics: Adaptive Card payload, the legacy MessageCard fallback, size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import PermanentSendError
from tests.fakes.teams import FakeTeams, card_problems


@pytest.fixture
async def fake() -> AsyncIterator[FakeTeams]:
    async with FakeTeams() as server:
        yield server


def msg(text: str = "Order #7 is ready", **metadata: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=7, idempotency_key="k", to="staff", text=text, metadata=metadata
    )


async def test_card_without_facts_or_link(fake: FakeTeams, http: HttpClient) -> None:
    ch = build_channel("teams", {"webhook_url": fake.workflow_url()}, http)
    result = await ch.send(msg())
    card = fake.posted[-1]["attachments"][0]["content"]
    assert [b["type"] for b in card["body"]] == ["TextBlock", "TextBlock"]
    assert card["body"][0]["text"] == "Order update"
    assert "actions" not in card
    assert card_problems(fake.posted[-1]) == []
    assert result.http_status == 202


async def test_legacy_connector_sends_a_message_card(fake: FakeTeams, http: HttpClient) -> None:
    settings = {"webhook_url": fake.legacy_url, "format": "legacy_connector"}
    result = await build_channel("teams", settings, http).send(
        msg(order_number="7", order_status="ready", tracking_url="https://o.example/t/x")
    )
    card = fake.posted[-1]
    assert card["@type"] == "MessageCard"
    assert card["title"] == "Order 7"
    assert card["sections"] == [
        {"facts": [{"name": "Order", "value": "7"}, {"name": "Status", "value": "ready"}]}
    ]
    assert card["potentialAction"][0]["targets"] == [
        {"os": "default", "uri": "https://o.example/t/x"}
    ]
    assert result.http_status == 200
    assert result.provider_status == "ok"


async def test_card_over_28_kb_is_refused_locally(fake: FakeTeams, http: HttpClient) -> None:
    ch = build_channel("teams", {"webhook_url": fake.workflow_url()}, http)
    with pytest.raises(PermanentSendError, match="bytes"):
        await ch.send(msg("\u00e9" * 15000))  # 30 KB as UTF-8
    assert fake.requests == []


async def test_wrong_sig_names_the_logic_apps_code(fake: FakeTeams, http: HttpClient) -> None:
    ch = build_channel("teams", {"webhook_url": fake.workflow_url(sig="stale")}, http)
    with pytest.raises(PermanentSendError) as caught:
        await ch.send(msg())
    assert caught.value.code == "DirectApiInvalidAuthorizationSignature"
    assert "stale" not in str(caught.value)
