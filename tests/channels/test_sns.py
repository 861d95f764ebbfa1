"""Amazon SNS specifics beyond the shared contract suite: SigV4 as the fake verifies it,
XML errors, the topic channel, FIFO deduplication, credentials."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel, describe
from orderbell.channels.sns import SnsSmsChannel, SnsTopicChannel, default_endpoint
from orderbell.domain.model import ChannelFamily
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.process import FakeProcess
from tests.fakes.sns import DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, FakeSns

TOPIC = "arn:aws:sns:us-east-1:123456789012:orderbell-staff"
FIFO_TOPIC = TOPIC + ".fifo"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSns]:
    async with FakeSns() as server:
        yield server


def sms_settings(fake: FakeSns | FakeProcess, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "region": "us-east-1",
        "access_key_id": DEFAULT_ACCESS_KEY_ID,
        "secret_access_key": DEFAULT_SECRET_ACCESS_KEY,
        "base_url": fake.base_url,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def topic_settings(fake: FakeSns, **changes: Any) -> dict[str, Any]:
    return sms_settings(fake, **{"topic_arn": TOPIC, **changes})


def msg(**kw: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": 3,
        "idempotency_key": "order-7:ready:staff:kitchen",
        "to": "+15558675310",
        "text": "Order #7 is ready",
    }
    values.update(kw)
    return OutboundMessage(**values)


async def test_the_fake_verifies_the_signature_of_a_good_publish(
    fake: FakeSns, http: HttpClient
) -> None:
    result = await build_channel("sns", sms_settings(fake), http).send(msg())

    auth = fake.last.headers["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={DEFAULT_ACCESS_KEY_ID}/")
    assert "SignedHeaders=content-type;host;x-amz-date" in auth
    assert fake.last.status == 200
    assert fake.published[result.provider_message_id or ""]["PhoneNumber"] == "+15558675310"
    assert result.provider_status == "published"


async def test_a_wrong_secret_fails_the_fakes_signature_check(
    fake: FakeSns, http: HttpClient
) -> None:
    channel = build_channel("sns", sms_settings(fake, secret_access_key="wrong/secret"), http)

    with pytest.raises(PermanentSendError) as caught:
        await channel.send(msg())

    assert (caught.value.http_status, caught.value.code) == (403, "SignatureDoesNotMatch")
    assert "wrong/secret" not in str(caught.value)


async def test_the_signature_covers_the_body(fake: FakeSns, http: HttpClient) -> None:
    channel = build_channel("sns", sms_settings(fake), http)
    assert isinstance(channel, SnsSmsChannel)
    pairs = channel.params(msg())
    headers = channel.sign(b"Action=Publish", await channel._credentials())

    resp = await http.request("POST", channel.url, data=pairs, headers=headers)

    assert resp.status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in resp.body


async def test_region_in_the_scope_must_be_the_endpoints(http: HttpClient) -> None:
    async with FakeSns(region="eu-west-1") as fake:
        channel = build_channel("sns", sms_settings(fake), http)  # signs for us-east-1
        with pytest.raises(PermanentSendError) as caught:
            await channel.send(msg())
    assert caught.value.code == "SignatureDoesNotMatch"
    assert "valid region" in str(caught.value)


async def test_temporary_credentials_need_the_session_token(http: HttpClient) -> None:
    async with FakeSns(session_token="session-token-1") as fake:
        with_token = build_channel("sns", sms_settings(fake, session_token="session-token-1"), http)
        await with_token.send(msg())
        assert fake.last.headers["x-amz-security-token"] == "session-token-1"
        assert "x-amz-security-token" in fake.last.headers["authorization"]

        without = build_channel("sns", sms_settings(fake), http)
        with pytest.raises(PermanentSendError) as caught:
            await without.send(msg())
    assert caught.value.http_status == 403


async def test_clock_skew_is_request_expired_and_transient(fake: FakeSns, http: HttpClient) -> None:
    real_now = fake.now
    fake.now = lambda: real_now() + timedelta(minutes=20)
    with pytest.raises(TransientSendError) as caught:
        await build_channel("sns", sms_settings(fake), http).send(msg())
    assert (caught.value.http_status, caught.value.code) == (400, "RequestExpired")


async def test_sms_attributes(fake: FakeSns, http: HttpClient) -> None:
    channel = build_channel(
        "sns",
        sms_settings(
            fake, sms_type="Promotional", sender_id="Bistro", origination_number="+18445550100"
        ),
        http,
    )
    result = await channel.send(msg())
    attributes = fake.published[result.provider_message_id or ""]["_attributes"]
    assert attributes == {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "Value": "Promotional"},
        "AWS.SNS.SMS.SenderID": {"DataType": "String", "Value": "Bistro"},
        "AWS.MM.SMS.OriginationNumber": {"DataType": "String", "Value": "+18445550100"},
    }


async def test_check_opt_out_asks_sns_first_and_refuses_an_opted_out_number(
    fake: FakeSns, http: HttpClient
) -> None:
    channel = build_channel("sns", sms_settings(fake, check_opt_out=True), http)
    result = await channel.send(msg())  # not opted out: checked (signed), then published
    assert fake.opt_out_checks == ["+15558675310"] and result.provider_message_id in fake.published
    fake.opted_out.add("+15558675310")
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(msg())
    assert caught.value.recipient_opted_out and caught.value.code == "OptedOut"
    assert len(fake.published) == 1  # nothing published to the opted-out number
    # without the setting, SNS is not asked (and would drop the message silently)
    plain = build_channel("sns", sms_settings(fake), http)
    await plain.send(msg())
    assert len(fake.opt_out_checks) == 2 and len(fake.published) == 2


async def test_check_opt_out_errors_are_the_providers(fake: FakeSns, http: HttpClient) -> None:
    channel = build_channel("sns", sms_settings(fake, check_opt_out=True), http)
    fake.fail_next(1, 429)
    with pytest.raises(TransientSendError):
        await channel.send(msg())
    assert fake.published == {}


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (429, "Throttled", True),
        (400, "Throttling", True),
        (400, "KMSThrottling", True),
        (500, "InternalError", True),
        (400, "InvalidParameter", False),
        (403, "AuthorizationError", False),
        (404, "NotFound", False),
    ],
)
async def test_xml_errors_map_by_code(
    fake: FakeSns, http: HttpClient, status: int, code: str, transient: bool
) -> None:
    fake.fail_next(
        1,
        status,
        body=(
            '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender'
            f"</Type><Code>{code}</Code><Message>{code} happened</Message></Error>"
            "<RequestId>r</RequestId></ErrorResponse>"
        ),
    )
    kind = TransientSendError if transient else PermanentSendError
    with pytest.raises(kind) as caught:
        await build_channel("sns", sms_settings(fake), http).send(msg())
    assert caught.value.code == code
    assert caught.value.http_status == status
    assert f"{code} happened" in str(caught.value)


async def test_topic_publish_with_subject_and_filterable_attributes(
    fake: FakeSns, http: HttpClient
) -> None:
    channel = build_channel("sns_topic", topic_settings(fake, family="chat"), http)
    assert isinstance(channel, SnsTopicChannel)
    assert channel.family == ChannelFamily.CHAT

    result = await channel.send(
        msg(
            to="",
            subject="Order #7 \u2013 ready\nfor pickup",
            metadata={"order_id": "7", "header:X": "y"},
        )
    )

    published = fake.published[result.provider_message_id or ""]
    assert published["TopicArn"] == TOPIC
    assert published["Subject"] == "Order #7 ready for pickup"  # ASCII, one line
    assert published["_attributes"] == {
        "message_id": {"DataType": "String", "Value": "3"},
        "order_id": {"DataType": "String", "Value": "7"},
    }
    assert "PhoneNumber" not in published


async def test_fifo_topic_deduplicates_retries_of_the_same_message(
    fake: FakeSns, http: HttpClient
) -> None:
    channel = build_channel("sns_topic", topic_settings(fake, topic_arn=FIFO_TOPIC), http)

    first = await channel.send(msg(metadata={"order_id": "7"}))
    again = await channel.send(msg(metadata={"order_id": "7"}))
    other = await channel.send(msg(idempotency_key="order-8:ready:staff:kitchen"))

    ids = [fake.published[r.provider_message_id or ""] for r in (first, again, other)]
    assert ids[0]["MessageDeduplicationId"] == ids[1]["MessageDeduplicationId"]
    assert ids[0]["MessageDeduplicationId"] != ids[2]["MessageDeduplicationId"]
    assert [i["MessageGroupId"] for i in ids] == ["7", "7", "orderbell"]


async def test_unknown_topic_is_permanent(fake: FakeSns, http: HttpClient) -> None:
    channel = build_channel(
        "sns_topic",
        topic_settings(fake, topic_arn="arn:aws:sns:us-east-1:123456789012:gone"),
        http,
    )
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(msg())
    assert (caught.value.http_status, caught.value.code) == (404, "NotFound")


async def test_default_credential_chain(
    fake: FakeSns, http: HttpClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DEFAULT_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    channel = build_channel(
        "sns", sms_settings(fake, access_key_id=None, secret_access_key=None), http
    )
    await channel.send(msg())
    assert fake.last.status == 200


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"region": "us-east"}, "region"),
        ({"secret_access_key": None}, None),
        ({"sender_id": "Bistro & Co"}, "sender_id"),
        ({"sms_type": "Urgent"}, "sms_type"),
        ({"origination_number": "555"}, "origination_number"),
    ],
)
def test_bad_sms_settings(settings: dict[str, Any], field: str | None) -> None:
    base = {
        "region": "us-east-1",
        "access_key_id": DEFAULT_ACCESS_KEY_ID,
        "secret_access_key": "s",
    }
    merged = {k: v for k, v in {**base, **settings}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        build_channel("sns", merged, HttpClient())
    assert caught.value.field == field


def test_topic_must_be_in_the_configured_region() -> None:
    with pytest.raises(ConfigError, match="another region"):
        build_channel(
            "sns_topic",
            {
                "region": "eu-west-1",
                "topic_arn": TOPIC,
                "access_key_id": DEFAULT_ACCESS_KEY_ID,
                "secret_access_key": "s",
            },
            HttpClient(),
        )


def test_endpoints_and_description() -> None:
    assert default_endpoint("us-east-1") == "https://sns.us-east-1.amazonaws.com"
    assert default_endpoint("cn-north-1") == "https://sns.cn-north-1.amazonaws.com.cn"
    info = describe("sns")
    fields = {f["name"]: f for f in info["fields"]}
    assert fields["secret_access_key"]["secret"] and fields["session_token"]["secret"]
    assert describe("sns_topic")["family"] == "email"


def test_botocore_is_not_imported_with_the_module() -> None:
    code = "import sys, orderbell.channels.sns; print('botocore' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_fake_serves_from_a_thread() -> None:
    with FakeSns() as fake:

        async def go() -> None:
            async with HttpClient() as http:
                await build_channel("sns", sms_settings(fake), http).send(msg())

        asyncio.run(go())
        assert fake.last.status == 200


async def test_fake_serves_as_a_process(http: HttpClient) -> None:
    with FakeProcess("sns", secret_access_key="process/secret") as proc:
        channel = build_channel("sns", sms_settings(proc, secret_access_key="process/secret"), http)
        await channel.send(msg())
        (recorded,) = proc.requests()
    assert recorded["status"] == 200
