"""STOP, START and HELP on every two-way channel, through the real app.

Each channel is a :class:`ChannelCase`: its settings (pointing at its loopback fake), how
the guest reaches it (the contact of its family), how its provider signs an inbound
text (posted to ``/v1/callbacks/{provider}/{channel_id}`` through ``create_app``), how
to read what its fake accepted, and how to make that fake fail once. The test bodies
below run over every case (and every database); another channel is one more case in
``CASES``.

Cases: Plivo, MessageBird (Conversations API with its JWT signature) and Bird (Channels
API with its HMAC signature) for SMS; WhatsApp; Messenger; Viber.
SMS via Twilio is covered in ``test_inbound.py`` and WhatsApp STOP/inquiry in
``test_inbound_whatsapp.py``; the keyword words used here vary per case so that the
STOP, START and HELP lists of ``orderbell.domain.consent`` are exercised across channels.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from orderbell.bootstrap import Container, build
from orderbell.channels import (
    messagebird_webhooks,
    meta_webhooks,
    plivo_webhooks,
    viber_webhooks,
)
from orderbell.config import Settings
from orderbell.domain.consent import (
    FAMILY_LABEL,
    HELP_WORDS,
    KEYWORD_OPT_IN_PURPOSES,
    START_WORDS,
    STOP_WORDS,
    KeywordAction,
    keyword_action,
    keyword_language,
)
from orderbell.domain.model import ChannelFamily, Purpose, Rule, Trigger
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import parse_config
from orderbell.sources.generic import OrderIn, StatusIn
from orderbell.store import tables
from orderbell.web.app import create_app
from tests.engine.harness import FakeClock, count, one, rows
from tests.fakes.harness import FakeServer
from tests.fakes.messagebird import FakeMessageBird
from tests.fakes.messenger import FakeMessenger
from tests.fakes.plivo import FakePlivo
from tests.fakes.viber import FakeViber
from tests.fakes.whatsapp import FakeWhatsApp

LOCATION = "Bistro Downtown"
LOCATION_PHONE = "+12125550100"
GUEST_PHONE = "+12125550123"
GUEST_WA = "+12125550166"
GUEST_PSID = "5012345678901"
GUEST_VIBER = "01234567890A="
PLIVO_NUMBER = "+15017122661"
META_APP_SECRET = "meta-app-secret-for-keyword-tests"
MESSAGEBIRD_SIGNING_KEY = "messagebird-signing-key-for-the-keyword-tests"
MESSAGEBIRD_NUMBER = "+31970102030"


@dataclass(frozen=True)
class Sent:
    """One message a fake accepted: to whom, and what the guest reads."""

    to: str
    text: str


#: (fake, signed URL, text, provider message id, when) -> (raw body, headers)
InboundBuilder = Callable[[Any, str, str, str, datetime], tuple[bytes, dict[str, str]]]


@dataclass(frozen=True)
class ChannelCase:
    """Everything the shared tests need to know about one two-way channel."""

    provider: str
    family: ChannelFamily
    #: the fake's class (a loopback server started per test)
    fake: type[FakeServer]
    #: the guest fields (``OrderIn.guest``) that reach this channel
    guest: dict[str, Any]
    #: the guest's contact point as stored, i.e. the recipient of every message
    contact: str
    settings: Callable[[Any], dict[str, Any]]
    inbound: InboundBuilder
    new_id: Callable[[], str]
    #: every message the fake accepted, in order
    sent: Callable[[Any], list[Sent]]
    #: an HTTP status the provider answers when it cannot take a message right now
    fail_status: int
    #: two STOP variants (the first sent twice with one id), a START and a HELP word
    stop_words: tuple[str, str]
    start_word: str
    help_word: str
    #: what the fake needs before the test (approved templates, subscribers ...)
    prepare: Callable[[Any], None] = lambda fake: None
    #: the test id when one provider has several cases (MessageBird's two APIs)
    case_id: str | None = None

    @property
    def ident(self) -> str:
        return self.case_id or self.provider

    @property
    def label(self) -> str:
        return FAMILY_LABEL[self.family]

    def fail_once(self, fake: Any) -> None:
        """The provider refuses the next message with ``fail_status``, shaped its way."""
        fake.fail_next(1, self.fail_status)


# -- Plivo (SMS) ---------------------------------------------------------------------------


def plivo_settings(fake: FakePlivo) -> dict[str, Any]:
    return {
        "auth_id": fake.auth_id,
        "auth_token": fake.auth_token,
        "src": PLIVO_NUMBER,
        "base_url": fake.base_url,
    }


def plivo_inbound(
    fake: FakePlivo, url: str, text: str, message_id: str, at: datetime
) -> tuple[bytes, dict[str, str]]:
    """An incoming SMS as Plivo posts it: a form, numbers without "+", V3 signature."""
    fields = {
        "From": GUEST_PHONE.removeprefix("+"),
        "To": PLIVO_NUMBER.removeprefix("+"),
        "Type": "sms",
        "Text": text,
        "MessageUUID": message_id,
        "Units": "1",
        "TotalRate": "0.00000",
        "TotalAmount": "0.00000",
        "MessageIntent": "",
    }
    nonce = str(secrets.randbelow(10**20)).zfill(20)
    base = plivo_webhooks.base_string("POST", url, fields.items())
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        plivo_webhooks.SIGNATURE: plivo_webhooks.expected_signature(fake.auth_token, base, nonce),
        plivo_webhooks.NONCE: nonce,
    }
    return urlencode(fields).encode(), headers


def plivo_sent(fake: FakePlivo) -> list[Sent]:
    return [Sent("+" + m["dst"], m["text"]) for m in fake.messages.values()]


# -- WhatsApp ------------------------------------------------------------------------------


def whatsapp_settings(fake: FakeWhatsApp) -> dict[str, Any]:
    return {
        "access_token": fake.access_token,
        "phone_number_id": fake.phone_number_id,
        "base_url": fake.base_url,
        "app_secret": META_APP_SECRET,
        # outside the 24-hour window only approved templates go out
        "templates": {t: "order_update" for t in ("confirmed", "ready", "feedback")},
    }


def whatsapp_prepare(fake: FakeWhatsApp) -> None:
    fake.templates["order_update"] = (frozenset({"en_US", "en"}), 4)


def whatsapp_inbound(
    fake: FakeWhatsApp, url: str, text: str, message_id: str, at: datetime
) -> tuple[bytes, dict[str, str]]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550783881",
            "phone_number_id": fake.phone_number_id,
        },
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": GUEST_WA.removeprefix("+")}],
        "messages": [
            {
                "from": GUEST_WA.removeprefix("+"),
                "id": message_id,
                "timestamp": str(int(at.timestamp())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}
            ],
        }
    ).encode()
    return body, meta_headers(body)


def whatsapp_sent(fake: FakeWhatsApp) -> list[Sent]:
    out = []
    for body in fake.sent.values():
        if body["type"] == "text":
            text = body["text"]["body"]
        else:  # a template: its name and parameters are what the guest gets
            params = [
                p["text"]
                for c in body["template"].get("components", [])
                for p in c.get("parameters", [])
            ]
            text = f"[template {body['template']['name']}] " + " | ".join(params)
        out.append(Sent("+" + body["to"].removeprefix("+"), text))
    return out


def meta_headers(body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        meta_webhooks.SIGNATURE: meta_webhooks.signature(META_APP_SECRET, body),
    }


# -- Messenger -----------------------------------------------------------------------------


def messenger_settings(fake: FakeMessenger) -> dict[str, Any]:
    return {
        "page_access_token": fake.page_token,
        "page_id": fake.page_id,
        "base_url": fake.base_url,
        "app_secret": META_APP_SECRET,
    }


def messenger_prepare(fake: FakeMessenger) -> None:
    fake.known_psids = {GUEST_PSID}  # the page knows only this guest


def messenger_inbound(
    fake: FakeMessenger, url: str, text: str, message_id: str, at: datetime
) -> tuple[bytes, dict[str, str]]:
    millis = int(at.timestamp() * 1000)
    event = {
        "sender": {"id": GUEST_PSID},
        "recipient": {"id": fake.page_id},
        "timestamp": millis,
        "message": {"mid": message_id, "text": text},
    }
    body = json.dumps(
        {"object": "page", "entry": [{"id": fake.page_id, "time": millis, "messaging": [event]}]}
    ).encode()
    return body, meta_headers(body)


def messenger_sent(fake: FakeMessenger) -> list[Sent]:
    return [Sent(b["recipient"]["id"], b["message"]["text"]) for b in fake.sent.values()]


# -- Viber ---------------------------------------------------------------------------------


def viber_settings(fake: FakeViber) -> dict[str, Any]:
    return {"auth_token": fake.auth_token, "sender_name": LOCATION, "base_url": fake.base_url}


def viber_prepare(fake: FakeViber) -> None:
    fake.subscribers = {GUEST_VIBER}  # a bot may only message its subscribers


def viber_inbound(
    fake: FakeViber, url: str, text: str, message_id: str, at: datetime
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event": "message",
            "timestamp": int(at.timestamp() * 1000),
            "chat_hostname": "SN-376_",
            "message_token": int(message_id),
            "sender": {
                "id": GUEST_VIBER,
                "name": "Ana",
                "language": "en",
                "country": "US",
                "api_version": 10,
            },
            "message": {"type": "text", "text": text},
            "silent": False,
        }
    ).encode()
    headers = {
        "content-type": "application/json",
        viber_webhooks.SIGNATURE: viber_webhooks.signature(fake.auth_token, body),
    }
    return body, headers


def viber_sent(fake: FakeViber) -> list[Sent]:
    return [Sent(b["receiver"], b["text"]) for b in fake.sent.values()]


# -- MessageBird (Conversations API, JWT) and Bird (Channels API, HMAC) -----------------------


def messagebird_settings(fake: FakeMessageBird) -> dict[str, Any]:
    return {
        "access_key": fake.access_key,
        "channel_id": fake.channel_id,
        "base_url": fake.base_url,
        "signing_key": MESSAGEBIRD_SIGNING_KEY,
    }


def bird_settings(fake: FakeMessageBird) -> dict[str, Any]:
    return {
        "api": "bird",
        "access_key": fake.access_key,
        "workspace_id": fake.workspace_id,
        "channel_id": fake.bird_channel_id,
        "base_url": fake.base_url,
        "signing_key": MESSAGEBIRD_SIGNING_KEY,
    }


def messagebird_inbound(
    fake: FakeMessageBird, url: str, text: str, message_id: str, at: datetime
) -> tuple[bytes, dict[str, str]]:
    """A Conversations ``message.created`` webhook, signed with MessageBird-Signature-JWT."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = json.dumps(
        {
            "type": "message.created",
            "contact": {"id": secrets.token_hex(16), "msisdn": int(GUEST_PHONE[1:])},
            "conversation": {"id": secrets.token_hex(16), "status": "active"},
            "message": {
                "id": message_id,
                "conversationId": secrets.token_hex(16),
                "platform": "sms",
                "to": MESSAGEBIRD_NUMBER,
                "from": GUEST_PHONE,
                "channelId": fake.channel_id,
                "type": "text",
                "content": {"text": text},
                "direction": "received",
                "status": "received",
                "createdDatetime": stamp,
                "updatedDatetime": stamp,
            },
        }
    ).encode()
    token = messagebird_webhooks.jwt_signature(
        MESSAGEBIRD_SIGNING_KEY, url, body, issued=at, jti=str(uuid.uuid4())
    )
    return body, {
        "content-type": "application/json",
        messagebird_webhooks.JWT_SIGNATURE: token,
    }


def bird_inbound(
    fake: FakeMessageBird, url: str, text: str, message_id: str, at: datetime
) -> tuple[bytes, dict[str, str]]:
    """A Bird ``sms.inbound`` webhook, signed with messagebird-signature + timestamp."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    body = json.dumps(
        {
            "service": "channels",
            "event": "sms.inbound",
            "payload": {
                "id": message_id,
                "channelId": fake.bird_channel_id,
                "sender": {
                    "contact": {
                        "id": str(uuid.uuid4()),
                        "identifierKey": "phonenumber",
                        "identifierValue": GUEST_PHONE,
                    }
                },
                "receiver": {"connector": {"id": str(uuid.uuid4())}},
                "body": {"type": "text", "text": {"text": text}},
                "parts": [{"platformReference": secrets.token_hex(16)}],
                "status": "delivered",
                "direction": "incoming",
                "lastStatusAt": stamp,
                "createdAt": stamp,
                "updatedAt": stamp,
            },
        }
    ).encode()
    timestamp = str(int(at.timestamp()))
    return body, {
        "content-type": "application/json",
        messagebird_webhooks.BIRD_SIGNATURE: messagebird_webhooks.bird_signature(
            MESSAGEBIRD_SIGNING_KEY, timestamp, url, body
        ),
        messagebird_webhooks.BIRD_TIMESTAMP: timestamp,
    }


def messagebird_sent(fake: FakeMessageBird) -> list[Sent]:
    out = []
    for body in fake.messages.values():
        if "receiver" in body:  # Bird Channels API
            to = body["receiver"]["contacts"][0]["identifierValue"]
            out.append(Sent(to, body["body"]["text"]["text"]))
        else:  # MessageBird Conversations API
            out.append(Sent(body["to"], body["content"]["text"]))
    return out


CASES: list[ChannelCase] = [
    ChannelCase(
        provider="plivo",
        family=ChannelFamily.SMS,
        fake=FakePlivo,
        guest={"phone": "(212) 555-0123"},
        contact=GUEST_PHONE,
        settings=plivo_settings,
        inbound=plivo_inbound,
        new_id=lambda: str(uuid.uuid4()),
        sent=plivo_sent,
        fail_status=503,
        stop_words=("Stop.", "STOPALL"),
        start_word="START",
        help_word="HELP",
    ),
    ChannelCase(
        provider="whatsapp",
        family=ChannelFamily.WHATSAPP,
        fake=FakeWhatsApp,
        guest={"whatsapp": GUEST_WA},
        contact=GUEST_WA,
        settings=whatsapp_settings,
        inbound=whatsapp_inbound,
        new_id=lambda: "wamid." + secrets.token_hex(16),
        sent=whatsapp_sent,
        fail_status=429,
        stop_words=("unsubscribe", "Stop all"),
        start_word="yes",
        help_word="info",
        prepare=whatsapp_prepare,
    ),
    ChannelCase(
        provider="messenger",
        family=ChannelFamily.MESSENGER,
        fake=FakeMessenger,
        guest={"messenger_psid": GUEST_PSID},
        contact=GUEST_PSID,
        settings=messenger_settings,
        inbound=messenger_inbound,
        new_id=lambda: "m_" + secrets.token_urlsafe(24),
        sent=messenger_sent,
        fail_status=503,
        stop_words=("opt out", "Cancel!"),
        start_word="unstop",
        help_word="Help?",
        prepare=messenger_prepare,
    ),
    ChannelCase(
        provider="viber",
        family=ChannelFamily.VIBER,
        fake=FakeViber,
        guest={"viber_id": GUEST_VIBER},
        contact=GUEST_VIBER,
        settings=viber_settings,
        inbound=viber_inbound,
        new_id=lambda: str(secrets.randbits(62)),
        sent=viber_sent,
        fail_status=429,
        stop_words=("cancelar", "Baja"),
        start_word="Start",
        help_word="ayuda",
        prepare=viber_prepare,
    ),
    *(
        ChannelCase(
            provider="messagebird",
            family=ChannelFamily.SMS,
            fake=FakeMessageBird,
            guest={"phone": GUEST_PHONE},
            contact=GUEST_PHONE,
            settings=settings,
            inbound=inbound,
            new_id=new_id,
            sent=messagebird_sent,
            fail_status=fail_status,
            stop_words=stop_words,
            start_word=start_word,
            help_word=help_word,
            case_id=f"messagebird-{api}",
        )
        for api, settings, inbound, new_id, fail_status, stop_words, start_word, help_word in (
            (
                "conversations",
                messagebird_settings,
                messagebird_inbound,
                lambda: secrets.token_hex(16),
                503,
                ("end", "Revoke"),
                "unstop",
                "info",
            ),
            (
                "bird",
                bird_settings,
                bird_inbound,
                lambda: str(uuid.uuid4()),
                429,
                ("quit", "OPTOUT"),
                "yes",
                "Help",
            ),
        )
    ),
]


def config(case: ChannelCase, fake: Any) -> str:
    return json.dumps(
        {
            "version": 1,
            "tenants": [
                {
                    "slug": "bistro",
                    "name": "Bistro Group",
                    "locations": [
                        {
                            "slug": "downtown",
                            "name": LOCATION,
                            "timezone": "America/New_York",
                            "locale": "en",
                            "phone": LOCATION_PHONE,
                        }
                    ],
                    "channels": [
                        {
                            "name": case.provider,
                            "provider": case.provider,
                            "settings": case.settings(fake),
                        }
                    ],
                }
            ],
        }
    )


class Env:
    """One Order Bell with one channel (the case's) pointing at its fake."""

    def __init__(
        self,
        case: ChannelCase,
        container: Container,
        clock: FakeClock,
        fake: Any,
        client: httpx.AsyncClient,
        tenant_id: int,
        channel_id: int,
    ) -> None:
        self.case, self.container, self.clock, self.fake = case, container, clock, fake
        self.client, self.tenant_id, self.channel_id = client, tenant_id, channel_id

    @property
    def db(self) -> Any:
        return self.container.db

    @property
    def channel(self) -> str:
        return self.case.provider

    async def order(self) -> int:
        guest = {"name": "Ana", **self.case.guest, "preferences": [self.case.family.value]}
        data = OrderIn.model_validate(
            {
                "order_id": "K-1",
                "number": "4242",
                "status": "confirmed",
                "fulfillment": "pickup",
                "guest": guest,
            }
        )
        result = await self.container.orders.upsert_order(self.tenant_id, data, None)
        return int(result.order_id)

    async def status(self, order_id: int, status: str) -> None:
        data = StatusIn.model_validate({"status": status})
        await self.container.orders.post_status(self.tenant_id, order_id, data, None)

    async def followup(self, order_id: int, delay_seconds: int = 3600) -> int:
        """A FEEDBACK follow-up queued for later, as the follow-up scheduler plans it."""
        cfg = await self.container.tenants.get(self.tenant_id)
        order = dict((await one(self.db, tables.orders, tables.orders.c.id == order_id))._mapping)
        async with self.db.transaction() as conn:
            (mid,), skipped = await self.container.ingestor.plan_and_store(
                conn,
                cfg,
                cfg.location(order["location_id"]),
                order,
                Trigger.FEEDBACK,
                self.clock(),
                event_key="keyword-test",
                rules=[
                    Rule(Trigger.FEEDBACK, purpose=Purpose.FOLLOWUP, delay_seconds=delay_seconds)
                ],
            )
        assert skipped == []
        return int(mid)

    async def reply(self, text: str, message_id: str | None = None) -> httpx.Response:
        """The guest's text, posted and signed exactly as the provider would."""
        path = f"/v1/callbacks/{self.case.provider}/{self.channel_id}"
        url = self.container.settings.public_url + path
        body, headers = self.case.inbound(
            self.fake, url, text, message_id or self.case.new_id(), self.clock()
        )
        resp = await self.client.post(path, content=body, headers=headers)
        assert resp.status_code == 200, resp.text
        return resp

    def texts(self) -> list[str]:
        """What the guest received on this channel, in order."""
        return [s.text for s in self.case.sent(self.fake) if s.to == self.case.contact]

    async def drain(self) -> None:
        await self.container.dispatcher(rand=lambda: 0.5).drain()


@pytest.fixture(params=CASES, ids=[c.ident for c in CASES])
def case(request: pytest.FixtureRequest) -> ChannelCase:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def env(case: ChannelCase, db_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with case.fake() as fake:
        case.prepare(fake)
        clock = FakeClock()
        container = build(Settings(data_dir=tmp_path, database_url=db_url), clock=clock)
        try:
            await apply_config(container, parse_config(config(case, fake), env={}))
            tenant = await one(container.db, tables.tenants)
            channel = await one(container.db, tables.channels)
            transport = httpx.ASGITransport(app=create_app(container))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield Env(case, container, clock, fake, client, tenant.id, channel.id)
        finally:
            await container.aclose()


def test_cases_use_real_keywords() -> None:
    """Every word the cases send is in the product's lists (a typo would test nothing)."""
    for case in CASES:
        for word in case.stop_words:
            assert keyword_action(word) == KeywordAction.STOP, (case.provider, word)
        assert keyword_action(case.start_word) == KeywordAction.START, case.provider
        assert keyword_action(case.help_word) == KeywordAction.HELP, case.provider
    assert {"cancelar", "baja"} <= STOP_WORDS and {"unstop", "yes"} <= START_WORDS
    assert "info" in HELP_WORDS


async def test_stop_confirms_once_and_stops_the_retry_the_followup_and_new_updates(
    env: Env,
) -> None:
    case = env.case
    order_id = await env.order()
    # The "confirmed" update fails once at the provider: a retry is planned.
    case.fail_once(env.fake)
    await env.drain()
    (retry,) = await rows(env.db, tables.messages, tables.messages.c.order_id == order_id)
    assert (retry.state, retry.attempts, retry.channel) == ("planned", 1, env.channel)
    assert len(env.fake.requests) == 1 and env.texts() == []
    # A follow-up is queued for an hour from now, on the same channel.
    followup = await env.followup(order_id)
    queued = await one(env.db, tables.messages, tables.messages.c.id == followup)
    assert (queued.state, queued.channel, queued.purpose) == ("planned", env.channel, "followup")

    first, second = case.stop_words
    repeated = case.new_id()
    await env.reply(first, repeated)
    await env.reply(first, repeated)  # the provider delivers the same message again
    await env.reply(second)  # the guest sends another STOP
    (confirmation,) = env.texts()
    # a Spanish keyword ("cancelar") is answered in Spanish
    unsubscribed = "te has dado de baja" if keyword_language(first) else "unsubscribed"
    assert unsubscribed in confirmation and case.label in confirmation
    assert "START" in confirmation and LOCATION in confirmation
    requests_after_stop = len(env.fake.requests)
    assert requests_after_stop == 2  # the failed update and the one confirmation

    # Every purpose on this family is revoked, once, from the keyword, with the text.
    events = await rows(env.db, tables.consent_events)
    assert sorted((e.family, e.purpose, e.granted, e.source) for e in events) == sorted(
        (case.family.value, p.value, False, "keyword") for p in Purpose
    )
    assert all(f'"{first}" on {env.channel}' in e.evidence for e in events)
    inbound = await rows(env.db, tables.inbound_messages)
    assert [(i.action, i.channel, i.family) for i in inbound] == [
        ("stop", env.channel, case.family.value)
    ] * 2
    assert "one confirmation sent" in inbound[0].outcome
    assert "already opted out" in inbound[1].outcome
    reply = await one(env.db, tables.messages, tables.messages.c.trigger == "opt_out_reply")
    assert (reply.state, reply.channel, reply.recipient) == ("sent", env.channel, case.contact)

    # The retry and the follow-up come due: neither goes, both say why.
    for wait in (120, 3600):
        env.clock.advance(wait)
        await env.drain()
    for mid, attempts in ((retry.id, 1), (followup, 0)):
        m = await one(env.db, tables.messages, tables.messages.c.id == mid)
        assert (m.state, m.skip_reason, m.attempts) == ("skipped", "opted_out", attempts), m
        assert "not sent: guest opted out of" in m.reason, m.reason
        assert f" {case.label} on " in m.reason and "(keyword)" in m.reason, m.reason
    # A new status update is not sent either.
    await env.status(order_id, "ready")
    await env.drain()
    ready = await one(env.db, tables.messages, tables.messages.c.trigger == "ready")
    assert (ready.state, ready.skip_reason) == ("skipped", "opted_out")
    assert len(env.fake.requests) == requests_after_stop
    assert env.texts() == [confirmation]


async def test_start_after_stop_sends_updates_again_and_records_the_grant(env: Env) -> None:
    case = env.case
    order_id = await env.order()
    await env.drain()
    assert len(env.texts()) == 1  # the "confirmed" update
    await env.reply(case.stop_words[0])
    env.clock.advance(30)
    await env.reply(case.start_word)
    texts = env.texts()
    assert len(texts) == 3
    assert ("te has dado de baja" if keyword_language(case.stop_words[0]) else "unsubscribed") in (
        texts[1]
    )
    assert "subscribed again" in texts[2] and case.label in texts[2]
    start_at = env.clock()

    # The ledger: the keyword revoked everything, then granted back all but marketing.
    grants = await rows(env.db, tables.consent_events, tables.consent_events.c.granted.is_(True))
    assert sorted((g.family, g.purpose, g.source) for g in grants) == sorted(
        (case.family.value, p.value, "keyword") for p in KEYWORD_OPT_IN_PURPOSES
    )
    assert all(g.occurred_at == start_at for g in grants)
    assert all(f'"{case.start_word}" on {env.channel}' in g.evidence for g in grants)
    revoked = await count(env.db, tables.consent_events, tables.consent_events.c.granted.is_(False))
    assert revoked == len(Purpose)  # the STOP's revokes stay in the ledger, nothing rewritten
    opt_in = await one(env.db, tables.audit_log, tables.audit_log.c.action == "consent.opt_in")
    assert opt_in.actor == f"guest (reply on {env.channel})"

    # A new status update goes out on this channel again.
    env.clock.advance(60)
    await env.status(order_id, "ready")
    await env.drain()
    ready = await one(env.db, tables.messages, tables.messages.c.trigger == "ready")
    assert (ready.state, ready.channel, ready.recipient) == ("sent", env.channel, case.contact)
    texts = env.texts()
    assert len(texts) == 4 and "ready for pickup" in texts[3] and "4242" in texts[3]


async def test_help_answers_on_the_channel_with_name_contact_and_opt_out(env: Env) -> None:
    case = env.case
    await env.order()
    await env.drain()
    before = env.texts()
    assert len(before) == 1
    await env.reply(case.help_word)
    texts = env.texts()
    assert texts[:1] == before and len(texts) == 2
    answer = texts[1]
    assert LOCATION in answer  # who is writing
    assert LOCATION_PHONE in answer  # how to reach them
    if keyword_language(case.help_word) == "es":  # "ayuda" is answered in Spanish
        assert "Responde BAJA para darte de baja" in answer  # how to stop
    else:
        assert "Reply STOP to opt out" in answer  # how to stop
    # the carriers' "Msg & data rates may apply" belongs on SMS, not on chat apps
    assert ("rates may apply" in answer or "tarifas de mensajes" in answer) == (
        case.family == ChannelFamily.SMS
    )
    # HELP changes no consent and is recorded as a HELP answer on this channel.
    assert await count(env.db, tables.consent_events) == 0
    (inbound,) = await rows(env.db, tables.inbound_messages)
    assert (inbound.action, inbound.channel) == ("help", env.channel)
    reply = await one(env.db, tables.messages, tables.messages.c.trigger == "help_reply")
    assert (reply.state, reply.channel, reply.recipient) == ("sent", env.channel, case.contact)
    assert reply.body == answer


def _provider_answers(case: ChannelCase) -> ChannelCase:
    settings = case.settings
    return replace(
        case,
        settings=lambda fake: {**settings(fake), "provider_answers_keywords": True},
        case_id=f"{case.ident}-provider-answers",
    )


PROVIDER_ANSWERS = [_provider_answers(c) for c in CASES if c.provider in ("plivo", "messagebird")]


@pytest.mark.parametrize("case", PROVIDER_ANSWERS, ids=[c.ident for c in PROVIDER_ANSWERS])
async def test_when_the_provider_answers_keywords_we_record_but_do_not_confirm(env: Env) -> None:
    """The number's own opt-out service (Plivo, Bird) already answered STOP and HELP: the
    ledger changes, no second confirmation goes out, and the history says why."""
    await env.order()
    await env.drain()
    assert len(env.texts()) == 1
    await env.reply(env.case.stop_words[0])
    await env.reply(env.case.help_word)
    await env.drain()
    assert len(env.texts()) == 1  # nothing of ours after the STOP or the HELP
    events = await rows(env.db, tables.consent_events)
    assert events and not any(e.granted for e in events)
    stop, help_ = await rows(env.db, tables.inbound_messages, order_by=tables.inbound_messages.c.id)
    assert "sent the opt-out confirmation itself" in stop.outcome
    assert (help_.action, "answered it itself" in help_.outcome) == ("help", True)


VIBER = next(c for c in CASES if c.provider == "viber")


@pytest.mark.parametrize("case", [VIBER], ids=["viber"])
async def test_viber_unsubscribed_event_opts_out_without_a_reply(env: Env) -> None:
    """Blocking the bot (Viber's ``unsubscribed`` callback) is an opt-out of the person:
    recorded in the ledger, no confirmation (the bot may not write to them any more)."""
    order_id = await env.order()
    await env.drain()
    assert len(env.texts()) == 1
    body = json.dumps(
        {
            "event": "unsubscribed",
            "timestamp": int(env.clock().timestamp() * 1000),
            "chat_hostname": "SN-376_",
            "user_id": GUEST_VIBER,
            "message_token": 4912661846655238145,
        }
    ).encode()
    headers = {
        "content-type": "application/json",
        viber_webhooks.SIGNATURE: viber_webhooks.signature(env.fake.auth_token, body),
    }
    path = f"/v1/callbacks/viber/{env.channel_id}"
    for _ in range(2):  # Viber retries: still one opt-out
        resp = await env.client.post(path, content=body, headers=headers)
        assert resp.status_code == 200, resp.text
    await env.drain()
    assert len(env.texts()) == 1  # no confirmation
    events = await rows(env.db, tables.consent_events)
    assert {(e.family, e.granted) for e in events} == {("viber", False)}
    assert len(events) == len(Purpose)
    await env.status(order_id, "ready")
    await env.drain()
    assert len(env.texts()) == 1
    (ready,) = await rows(env.db, tables.messages, tables.messages.c.trigger == "ready")
    assert ready.state == "skipped" and ready.skip_reason == "opted_out"
