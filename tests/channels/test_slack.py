"""Slack specifics: Block Kit limits, text-only mode, webhook error codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.slack import FakeSlack, block_problems


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


def channel(fake: FakeSlack, http: HttpClient, **changes: Any) -> Any:
    settings = {"webhook_url": fake.webhook_url, "base_url": fake.base_url, **changes}
    return build_channel("slack", settings, http)


def msg(text: str, subject: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        message_id=1, idempotency_key="k", to="#kitchen", text=text, subject=subject
    )


async def test_long_text_is_split_into_sections_of_at_most_3000(
    fake: FakeSlack, http: HttpClient
) -> None:
    text = ("Line with <html> & stuff. " * 40 + "\n") * 12  # ~12,500 characters
    await channel(fake, http).send(msg(text))
    blocks = fake.posted[-1]["blocks"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert len(sections) >= 5
    assert all(len(s) <= 3000 for s in sections)
    assert "".join(sections).replace("\n", "").replace(" ", "") == (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    ).replace("\n", "").replace(" ", "")
    assert block_problems(blocks) == []


async def test_header_is_cut_to_150_characters(fake: FakeSlack, http: HttpClient) -> None:
    await channel(fake, http).send(msg("x", subject="S" * 200))
    header = fake.posted[-1]["blocks"][0]["text"]["text"]
    assert len(header) == 150
    assert header.endswith("\u2026")


async def test_text_only_mode(fake: FakeSlack, http: HttpClient) -> None:
    await channel(fake, http, blocks=False).send(msg("Order #5 ready"))
    assert fake.posted[-1] == {"text": "Order #5 ready"}


async def test_archived_channel_is_permanent_with_slack_code(
    fake: FakeSlack, http: HttpClient
) -> None:
    fake.archived = True
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg("x"))
    assert caught.value.code == "channel_is_archived"
    assert caught.value.http_status == 410


async def test_rate_limited_waits_retry_after(fake: FakeSlack, http: HttpClient) -> None:
    fake.fail_next(1, 429, body="rate_limited", headers={"Retry-After": "30"})
    with pytest.raises(TransientSendError) as caught:
        await channel(fake, http).send(msg("x"))
    assert caught.value.retry_after == 30.0


async def test_wrong_secret_is_403_and_the_url_is_never_echoed(
    fake: FakeSlack, http: HttpClient
) -> None:
    url = f"{fake.base_url}/services/{fake.team_id}/{fake.bot_id}/not-the-secret"
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http, webhook_url=url).send(msg("x"))
    assert caught.value.code == "invalid_token"
    assert "not-the-secret" not in str(caught.value)


def test_webhook_url_is_required_and_masked() -> None:
    with pytest.raises(ConfigError) as caught:
        build_channel("slack", {"webhook_url": "hooks.slack.com/x"}, HttpClient())
    assert caught.value.field == "webhook_url"
    assert "hooks.slack.com" not in str(caught.value)


async def test_fake_serves_from_a_thread(http: HttpClient) -> None:
    with FakeSlack() as threaded:
        ch = build_channel(
            "slack", {"webhook_url": threaded.webhook_url, "base_url": threaded.base_url}, http
        )
        result = await ch.send(msg("Order #8 ready"))
    assert result.provider_status == "ok"
    assert threaded.posted[0]["text"] == "Order update: Order #8 ready"
