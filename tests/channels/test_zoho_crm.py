"""Zoho CRM specifics, and the shared contract suite for it.

Zoho updates a record with ``PUT``, which aiohttp treats as idempotent: when the
connection is cut before an answer it silently sends the request once more. So the
contract suite's "connection cut" test does not apply (the case is kept out of
``CASES``); every other contract test runs here, and the silent retry is pinned down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import PermanentSendError, TransientSendError
from tests.channels.cases import ZOHO_CRM
from tests.channels.test_provider_contract import (  # noqa: F401 -- collected here for Zoho
    test_5xx_is_transient,
    test_429_is_transient_with_retry_after,
    test_fake_refuses_wrong_credentials,
    test_message_the_provider_would_refuse_fails_before_any_request,
    test_provider_error_is_permanent_and_carries_the_code,
    test_recovers_after_a_transient_failure,
    test_send_reaches_the_fake_as_the_api_expects,
    test_slow_answer_beyond_the_timeout_is_transient,
    test_truncated_answer_is_transient,
    test_unreachable_provider_is_transient,
)
from tests.fakes.zoho_crm import FakeZohoCrm

RECORD = "4876876000000624001"


@pytest.fixture
def case() -> Any:
    return ZOHO_CRM


@pytest.fixture
async def fake() -> AsyncIterator[FakeZohoCrm]:
    async with FakeZohoCrm() as server:
        yield server


def channel(fake: FakeZohoCrm, http: HttpClient, **changes: Any) -> Any:
    settings = {"access_token": fake.access_token, "base_url": fake.base_url, **changes}
    return build_channel("zoho_crm", settings, http)


def msg(status: str = "ready", record: str = RECORD) -> OutboundMessage:
    metadata = {"zoho_record_id": record, "order_status": status}
    return OutboundMessage(
        message_id=1, idempotency_key="k", to="crm-sync", text="x", metadata=metadata
    )


async def test_a_cut_connection_is_not_repeated_behind_our_back(
    fake: FakeZohoCrm, http: HttpClient
) -> None:
    # A PUT is idempotent, but every provider call must be one attempt in the history:
    # the client does not silently repeat it; the engine's retry policy decides.
    fake.reset_next(1)
    with pytest.raises(TransientSendError):
        await channel(fake, http, stage_map={"ready": "Ready"}).send(msg())
    assert [r.fault for r in fake.requests] == ["reset"]


async def test_record_level_error_names_the_field(fake: FakeZohoCrm, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg("eaten"))
    assert caught.value.code == "INVALID_DATA"
    assert "(field Stage)" in str(caught.value)


async def test_older_api_version_other_field_no_workflow(
    fake: FakeZohoCrm, http: HttpClient
) -> None:
    ch = channel(fake, http, api_version=2, field="Description", trigger_workflow=False)
    await ch.send(msg("ready"))
    assert fake.last.path == f"/crm/v2/Deals/{RECORD}"
    assert fake.last.fields == {"data": [{"Description": "ready"}]}


async def test_unknown_record(fake: FakeZohoCrm, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http, stage_map={"ready": "Ready"}).send(msg(record="1"))
    assert caught.value.code == "INVALID_DATA"
    assert caught.value.http_status == 400


async def test_expired_token(fake: FakeZohoCrm, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http, access_token="1000.expired").send(msg())
    assert caught.value.code == "INVALID_TOKEN"
    assert caught.value.http_status == 401
