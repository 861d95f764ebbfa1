"""Every provider adapter against its strict fake: one table of cases, one set of tests.

Each test runs once per ``ProviderCase`` in ``cases.py``; a new provider joins the suite
by adding a case there.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import Channel
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import PermanentSendError, TransientSendError
from tests.fakes.harness import FakeServer

from .cases import CASES, ProviderCase

pytestmark = pytest.mark.parametrize("case", CASES, ids=str)


@pytest.fixture
async def fake(case: ProviderCase) -> AsyncIterator[FakeServer]:
    async with case.fake() as server:
        yield server


def channel_for(
    case: ProviderCase, fake: FakeServer, http: HttpClient, **overrides: Any
) -> Channel:
    return build_channel(case.provider, {**case.settings(fake), **overrides}, http)


async def test_send_reaches_the_fake_as_the_api_expects(
    case: ProviderCase, fake: FakeServer, http: HttpClient
) -> None:
    channel = channel_for(case, fake, http)
    assert isinstance(channel, Channel)

    result = await channel.send(case.message)

    assert len(fake.requests) == 1
    rec = fake.last
    assert rec.status is not None and 200 <= rec.status < 300
    case.check_request(rec, case.message, fake)
    case.check_result(result, fake)


async def test_provider_error_is_permanent_and_carries_the_code(
    case: ProviderCase, fake: FakeServer, http: HttpClient
) -> None:
    status, body, code = case.permanent
    fake.fail_next(1, status, body=body)

    with pytest.raises(PermanentSendError) as caught:
        await channel_for(case, fake, http).send(case.message)

    assert caught.value.http_status == status
    assert caught.value.code == code
    assert case.provider in str(caught.value)
    assert case.message.to not in str(caught.value)  # echoed contacts are masked


async def test_429_is_transient_with_retry_after(
    case: ProviderCase, fake: FakeServer, http: HttpClient
) -> None:
    fake.fail_next(1, 429, headers={"Retry-After": "7"})

    with pytest.raises(TransientSendError) as caught:
        await channel_for(case, fake, http).send(case.message)

    assert caught.value.http_status == 429
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_transient(
    case: ProviderCase, fake: FakeServer, http: HttpClient, status: int
) -> None:
    fake.fail_next(1, status)

    with pytest.raises(TransientSendError) as caught:
        await channel_for(case, fake, http).send(case.message)

    assert caught.value.http_status == status


async def test_recovers_after_a_transient_failure(
    case: ProviderCase, fake: FakeServer, http: HttpClient
) -> None:
    channel = channel_for(case, fake, http)
    fake.fail_next(1, 503)
    with pytest.raises(TransientSendError):
        await channel.send(case.message)

    result = await channel.send(case.message)

    case.check_result(result, fake)
    assert [r.status for r in fake.requests] == [503, fake.last.status]


async def test_slow_answer_beyond_the_timeout_is_transient(
    case: ProviderCase, fake: FakeServer
) -> None:
    fake.delay_next(1, 2.0)
    async with HttpClient(timeout=0.3) as http:
        started = time.monotonic()
        with pytest.raises(TransientSendError) as caught:
            await channel_for(case, fake, http).send(case.message)
    assert time.monotonic() - started < 1.5
    assert "did not answer within 0.3 s" in str(caught.value)


@pytest.mark.parametrize("hard", [True, False], ids=["rst", "close"])
async def test_connection_cut_without_an_answer_is_transient(
    case: ProviderCase, fake: FakeServer, http: HttpClient, hard: bool
) -> None:
    fake.reset_next(1, hard=hard)

    with pytest.raises(TransientSendError) as caught:
        await channel_for(case, fake, http).send(case.message)

    assert caught.value.http_status is None
    assert fake.last.fault == "reset"


async def test_truncated_answer_is_transient(
    case: ProviderCase, fake: FakeServer, http: HttpClient
) -> None:
    fake.truncate_next(1)

    with pytest.raises(TransientSendError, match="incomplete answer"):
        await channel_for(case, fake, http).send(case.message)


async def test_unreachable_provider_is_transient(
    case: ProviderCase, fake: FakeServer, http: HttpClient
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    channel = channel_for(case, fake, http, base_url=f"http://127.0.0.1:{closed_port}")

    with pytest.raises(TransientSendError, match=r"cannot connect to 127\.0\.0\.1"):
        await channel.send(case.message)


async def test_message_the_provider_would_refuse_fails_before_any_request(
    case: ProviderCase, fake: FakeServer, http: HttpClient
) -> None:
    with pytest.raises(PermanentSendError):
        await channel_for(case, fake, http).send(case.refused_locally)

    assert fake.requests == []


async def test_fake_refuses_wrong_credentials(
    case: ProviderCase, fake: FakeServer, http: HttpClient
) -> None:
    channel = channel_for(case, fake, http, **case.wrong_credentials)

    with pytest.raises(PermanentSendError) as caught:
        await channel.send(case.message)

    assert caught.value.http_status == case.credentials_status
    assert fake.last.status == case.credentials_status
    for secret in case.wrong_credentials.values():
        assert secret not in str(caught.value)
