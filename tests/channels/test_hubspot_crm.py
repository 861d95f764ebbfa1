"""HubSpot CRM specifics: property value mapping, object types, validation errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import PermanentSendError
from tests.fakes.hubspot_crm import FakeHubSpotCrm


@pytest.fixture
async def fake() -> AsyncIterator[FakeHubSpotCrm]:
    async with FakeHubSpotCrm() as server:
        yield server


def channel(fake: FakeHubSpotCrm, http: HttpClient, **changes: Any) -> Any:
    settings = {"access_token": fake.access_token, "base_url": fake.base_url, **changes}
    return build_channel("hubspot_crm", settings, http)


def msg(**metadata: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=1, idempotency_key="k", to="crm-sync", text="x", metadata=metadata
    )


async def test_contact_property_with_a_value_map(fake: FakeHubSpotCrm, http: HttpClient) -> None:
    fake.properties["contacts"]["last_order_stage"] = frozenset({"Cooking", "On its way"})
    ch = channel(
        fake,
        http,
        object_type="contacts",
        property_name="last_order_stage",
        value_map={"out_for_delivery": "On its way"},
    )
    result = await ch.send(msg(hubspot_object_id="501", order_status="out_for_delivery"))
    assert fake.last.path == "/crm/v3/objects/contacts/501"
    assert fake.records["contacts"]["501"]["last_order_stage"] == "On its way"
    assert result.provider_message_id == "501"


async def test_value_outside_the_options_is_a_validation_error(
    fake: FakeHubSpotCrm, http: HttpClient
) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg(hubspot_object_id="9001", order_status="eaten"))
    assert caught.value.code == "VALIDATION_ERROR"
    assert "INVALID_OPTION" in str(caught.value)


async def test_unknown_record(fake: FakeHubSpotCrm, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg(hubspot_object_id="1", order_status="ready"))
    assert caught.value.code == "OBJECT_NOT_FOUND"


@pytest.mark.parametrize("metadata", [{"order_status": "ready"}, {"hubspot_object_id": "9001"}])
async def test_refused_locally(
    fake: FakeHubSpotCrm, http: HttpClient, metadata: dict[str, str]
) -> None:
    with pytest.raises(PermanentSendError):
        await channel(fake, http).send(msg(**metadata))
    assert fake.requests == []
