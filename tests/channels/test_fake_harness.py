"""The shared fake harness: recording, faults, and its three ways to run."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import TransientSendError
from tests.fakes.echo import EchoFake
from tests.fakes.process import FakeProcess
from tests.fakes.twilio import FakeTwilio

SMS = OutboundMessage(message_id=1, idempotency_key="k", to="+15558675310", text="Ready")


def twilio_channel(base_url: str, http: HttpClient, fake: FakeTwilio | None = None):  # type: ignore[no-untyped-def]
    sid = fake.account_sid if fake else "AC" + "0123456789abcdef" * 2
    token = fake.auth_token if fake else "fake-twilio-auth-token-0001"
    return build_channel(
        "twilio_sms",
        {
            "account_sid": sid,
            "auth_token": token,
            "from_number": "+15017122661",
            "base_url": base_url,
        },
        http,
    )


async def test_records_every_request(http: HttpClient) -> None:
    async with EchoFake() as fake:
        await http.request("POST", fake.base_url + "/a?x=1", json={"k": "v"})
        await http.request("PUT", fake.base_url + "/b", data={"f": "1"})
    first, second = fake.requests
    assert (first.method, first.path, first.query_string, first.fields) == (
        "POST",
        "/a",
        "x=1",
        {"k": "v"},
    )
    assert (second.method, second.fields, second.status) == ("PUT", {"f": "1"}, 200)
    assert first.received_monotonic <= second.received_monotonic
    assert first.received_at > 1.7e9


async def test_faults_apply_in_order_then_stop(http: HttpClient) -> None:
    async with EchoFake() as fake:
        fake.fail_next(2, 500)
        fake.fail_next(1, 418, body={"teapot": True})
        statuses = [(await http.request("GET", fake.base_url + "/")).status for _ in range(4)]
        assert statuses == [500, 500, 418, 200]
        assert [r.fault for r in fake.requests] == ["fail", "fail", "fail", None]


async def test_latency_and_delay_add_up(http: HttpClient) -> None:
    async with EchoFake(latency=0.05) as fake:
        fake.delay_next(1, 0.1)
        rounds = []
        for _ in range(2):
            started = time.monotonic()
            await http.request("GET", fake.base_url + "/")
            rounds.append(time.monotonic() - started)
    assert rounds[0] >= 0.15
    assert 0.05 <= rounds[1] < 0.15


async def test_unknown_path_gets_the_providers_404(http: HttpClient) -> None:
    async with FakeTwilio() as fake:
        resp = await http.request("GET", fake.base_url + "/nowhere")
    assert resp.status == 404
    assert resp.json()["code"] == 20404
    assert fake.last.status == 404


async def test_control_endpoints(http: HttpClient) -> None:
    async with FakeTwilio() as fake:
        await twilio_channel(fake.base_url, http, fake).send(SMS)
        listed = (await http.request("GET", fake.base_url + "/_fake/requests")).json()
        assert [r["fields"]["To"] for r in listed] == ["+15558675310"]
        assert listed[0]["status"] == 201 and listed[0]["received_at"] > 0
        assert (await http.request("GET", fake.base_url + "/_fake/requests?since=1")).json() == []
        assert (await http.request("GET", fake.base_url + "/_fake/stats")).json()["count"] == 1

        await http.request(
            "POST", fake.base_url + "/_fake/faults", json={"kind": "fail", "status": 503}
        )
        with pytest.raises(TransientSendError):
            await twilio_channel(fake.base_url, http, fake).send(SMS)
        await http.request("POST", fake.base_url + "/_fake/config", json={"latency": 0.01})
        assert fake.latency == 0.01
        await http.request("POST", fake.base_url + "/_fake/reset", json={})
        assert fake.requests == []
        bad = await http.request("POST", fake.base_url + "/_fake/faults", json={"kind": "x"})
        assert bad.status == 400


def test_runs_in_a_background_thread() -> None:
    with FakeTwilio() as fake:
        req = urllib.request.Request(fake.base_url + "/_fake/stats")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["name"] == "twilio"
        fake.fail_next(1, 500)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(fake.base_url + "/x", timeout=5)
        assert caught.value.code == 500
        assert fake.wait_for_sync(1)[0].fault == "fail"
    with pytest.raises(RuntimeError):
        _ = fake.base_url


async def test_thread_fake_used_from_the_test_loop(http: HttpClient) -> None:
    with FakeTwilio() as fake:
        result = await twilio_channel(fake.base_url, http, fake).send(SMS)
        assert result.provider_message_id in fake.messages
        await fake.wait_for(1)


async def test_runs_as_a_process(http: HttpClient) -> None:
    with FakeProcess("twilio", auth_token="process-token") as proc:
        channel = build_channel(
            "twilio_sms",
            {
                "account_sid": "AC" + "0123456789abcdef" * 2,
                "auth_token": "process-token",
                "from_number": "+15017122661",
                "base_url": proc.base_url,
            },
            http,
        )
        result = await channel.send(SMS)
        assert result.provider_message_id and result.provider_message_id.startswith("SM")
        arrived = proc.requests()
        assert [(r["path"], r["fields"]["Body"]) for r in arrived] == [
            ("/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json", "Ready")
        ]
        proc.inject("reset")
        with pytest.raises(TransientSendError):
            await channel.send(SMS)
        assert proc.stats()["count"] == 2
        proc.reset()
        assert proc.requests() == []
