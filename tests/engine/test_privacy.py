"""Data rights and email unsubscribe in the engine: follow-up emails carry RFC 8058
headers and a visible link with the postal address; the one-click POST revokes follow-ups
and marketing by email at once; export, erase (every column scanned), retention purge;
and every consent change path writes an audit row."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa

from orderbell.channels.base import InboundMessage
from orderbell.engine.privacy import parse_duration, unsubscribe_token
from orderbell.errors import NotFoundError, PayloadError
from orderbell.store import tables
from orderbell.web.app import create_app
from tests.engine.harness import GUEST, App, one, rows
from tests.engine.test_followups import make_app, messages_of, move_to, worker

M = tables.messages
EMAIL = "maria.lopez@example.com"
PHONE = "+12125550123"
NAME = "Maria Lopez"
ADDRESS = "12 Mott Street, New York, NY 10013"


@pytest_asyncio.fixture
async def fapp(db_url: str, tmp_path: Path, twilio: Any, sendgrid: Any) -> AsyncIterator[App]:
    built = await make_app(db_url, tmp_path / "data", twilio, sendgrid)
    async with built.db.transaction() as conn:
        await conn.execute(tables.locations.update().values(address=ADDRESS))
    built.container.tenants.invalidate()
    try:
        yield built
    finally:
        await built.container.aclose()


@pytest_asyncio.fixture
async def client(fapp: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(fapp.container))
    async with httpx.AsyncClient(transport=transport, base_url="http://orderbell.test") as c:
        yield c


async def email_order(app: App, order_id: str = "D-1") -> int:
    result = await app.order(
        order_id=order_id,
        number=order_id,
        status="completed",
        fulfillment="delivery",
        guest={"name": NAME, "email": EMAIL, "phone": GUEST["phone"], "preferences": ["email"]},
    )
    return int(result.order_id)


def mails(app: App) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in app.sendgrid.requests if r.path.endswith("/mail/send")]


def unsubscribe_path(mail: dict[str, Any]) -> str:
    header = mail["headers"]["List-Unsubscribe"]
    assert header.startswith("<http") and header.endswith(">")
    return "/u/" + header[1:-1].rsplit("/u/", 1)[1]


# -- RFC 8058 ----------------------------------------------------------------------------


async def test_follow_up_email_carries_one_click_unsubscribe_and_address(fapp: App) -> None:
    order_id = await email_order(fapp)
    await worker(fapp).drain()  # the "completed" update: transactional, no unsubscribe
    (update,) = mails(fapp)
    assert "List-Unsubscribe" not in (update.get("headers") or {})
    await move_to(fapp, 30)
    await worker(fapp).drain()
    (feedback,) = await messages_of(fapp, order_id, "feedback")
    assert feedback.state == "sent", feedback.reason
    mail = mails(fapp)[-1]
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = unsubscribe_path(mail)
    contents = {c["type"]: c["value"] for c in mail["content"]}
    assert path in contents["text/plain"] and ADDRESS in contents["text/plain"]
    assert path in contents["text/html"] and ADDRESS in contents["text/html"]
    assert "Unsubscribe" in contents["text/html"]


async def test_one_click_unsubscribe_is_idempotent_and_stops_a_queued_follow_up(
    fapp: App, client: httpx.AsyncClient
) -> None:
    first = await email_order(fapp, "D-1")
    await move_to(fapp, 30)
    await worker(fapp).drain()
    path = unsubscribe_path(mails(fapp)[-1])

    # a second order's feedback is queued before the guest unsubscribes (not capped: the
    # frequency cap is per 30 days, so move on 31 days)
    await move_to(fapp, 31 * 24 * 60)
    second = await email_order(fapp, "D-2")
    await worker(fapp).drain()  # its "completed" update goes now; the feedback waits
    (queued,) = await messages_of(fapp, second, "feedback")
    assert queued.state == "planned"

    page = await client.get(path)  # a mail scanner's prefetch changes nothing
    assert page.status_code == 200 and "<form" in page.text and "Order updates" in page.text
    assert not await rows(
        fapp.db, tables.consent_events, tables.consent_events.c.source == "unsubscribe link"
    )

    done = await client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    again = await client.post(path, content=b"List-Unsubscribe=One-Click")
    assert again.status_code == 200 and "already unsubscribed" in again.text
    events = await rows(
        fapp.db, tables.consent_events, tables.consent_events.c.source == "unsubscribe link"
    )
    assert sorted((e.family, e.purpose, e.granted) for e in events) == [
        ("email", "followup", False),
        ("email", "marketing", False),
    ]
    audits = await rows(
        fapp.db, tables.audit_log, tables.audit_log.c.action == "consent.unsubscribe"
    )
    assert len(audits) == 1 and audits[0].actor == "guest (unsubscribe link)"

    sent_before = len(mails(fapp))
    await move_to(fapp, 31 * 24 * 60 + 30)
    await worker(fapp).drain()
    m = await one(fapp.db, M, M.c.id == queued.id)
    assert (m.state, m.skip_reason) == ("skipped", "opted_out")
    assert "opted out of follow-up messages by email" in m.reason and "unsubscribe link" in m.reason
    assert len(mails(fapp)) == sent_before
    # order updates still go out by email
    await fapp.order(order_id="D-3", number="D-3", status="confirmed", guest={"email": EMAIL})
    await worker(fapp).drain()
    assert len(mails(fapp)) == sent_before + 1
    assert first


async def test_forged_and_expired_links_are_refused(fapp: App, client: httpx.AsyncClient) -> None:
    await email_order(fapp)
    (customer,) = await rows(fapp.db, tables.customers)
    forged = (await client.get("/u/bm90LXJlYWw.AAAAAAAAAAAAAAAAAAAAAA")).status_code
    assert forged == 404
    assert (await client.post("/u/garbage")).status_code == 404
    signer = fapp.container.signer
    assert signer is not None
    old = unsubscribe_token(signer, fapp.tenant_id, customer.id, fapp.clock() - timedelta(days=61))
    assert (await client.post(f"/u/{old}")).status_code == 400
    fresh = unsubscribe_token(
        signer, fapp.tenant_id, customer.id, fapp.clock() - timedelta(days=59)
    )
    assert (await client.get(f"/u/{fresh}")).status_code == 200
    assert not await rows(
        fapp.db, tables.consent_events, tables.consent_events.c.granted.is_(False)
    )


# -- export, erase, purge ----------------------------------------------------------------


async def populated(app: App) -> int:
    order_id = await email_order(app)
    await worker(app).drain()
    await move_to(app, 30)
    await worker(app).drain()
    handler = app.container.callbacks.on_inbound
    assert handler is not None
    await handler(app.tenant_id, "sms", InboundMessage("SMin1", PHONE, "+15017122661", "STOP"))
    await worker(app).drain()
    await app.container.overrides.resend(app.tenant_id, order_id, actor="Sam", note=None)
    return order_id


async def test_export_returns_everything_held(fapp: App, client: httpx.AsyncClient) -> None:
    order_id = await populated(fapp)
    headers = {"Authorization": f"Bearer {fapp.api_key}"}
    got = await client.get("/v1/privacy/export", params={"email": EMAIL.upper()}, headers=headers)
    assert got.status_code == 200, got.text
    data = got.json()
    assert data["customer"]["name"] == NAME
    assert {p["value"] for p in data["contact_points"]} == {EMAIL, PHONE}
    assert [o["id"] for o in data["orders"]] == [order_id]
    assert data["order_events"] and isinstance(data["order_events"][0]["payload"], dict)
    assert any(m["body"] and NAME.split()[0] in m["body"] for m in data["messages"])
    assert data["attempts"] and data["message_log"]
    assert [i["text"] for i in data["inbound_messages"]] == ["STOP"]
    assert any(e["source"] == "keyword" for e in data["consent_events"])
    assert {a["action"] for a in data["audit_log"]} >= {"order.resend", "consent.opt_out"}
    by_phone = await client.get(
        "/v1/privacy/export", params={"phone": "(212) 555-0123"}, headers=headers
    )
    assert by_phone.json()["customer"]["id"] == data["customer"]["id"]
    other = {"Authorization": f"Bearer {fapp.other_api_key}"}
    assert (
        await client.get("/v1/privacy/export", params={"email": EMAIL}, headers=other)
    ).status_code == 404
    assert (await client.get("/v1/privacy/export", headers=headers)).status_code == 400


async def scan(app: App, needles: list[str]) -> list[str]:
    """Every column of every table, as text, searched for each needle."""
    found = []
    async with app.db.read() as conn:
        for table in tables.metadata.sorted_tables:
            for row in (await conn.execute(sa.select(table))).all():
                for col, value in row._mapping.items():
                    text = (
                        json.dumps(value) if isinstance(value, list | dict) else str(value)
                    ).lower()
                    found += [
                        f"{table.name}.{col}: {needle}"
                        for needle in needles
                        if needle.lower() in text
                    ]
    return found


async def test_erase_leaves_no_personal_data_and_keeps_history(
    fapp: App, client: httpx.AsyncClient
) -> None:
    await populated(fapp)
    needles = [PHONE, "2125550123", "555-0123", EMAIL, NAME, "Lopez", "Maria"]
    assert await scan(fapp, needles)  # the data is there before
    headers = {"Authorization": f"Bearer {fapp.api_key}"}
    before = (await client.get("/v1/messages", params={"limit": 500}, headers=headers)).json()
    consent_before = len(await rows(fapp.db, tables.consent_events))

    done = await client.post(
        "/v1/privacy/erase", json={"phone": PHONE, "actor": "Dana (DPO)"}, headers=headers
    )
    assert done.status_code == 200, done.text
    assert await scan(fapp, needles) == []

    after = (await client.get("/v1/messages", params={"limit": 500}, headers=headers)).json()
    assert len(after["items"]) == len(before["items"]) > 0
    assert [m["state"] for m in after["items"]] == [m["state"] for m in before["items"]]
    assert len(await rows(fapp.db, tables.consent_events)) == consent_before
    (customer,) = await rows(
        fapp.db, tables.customers, tables.customers.c.tenant_id == fapp.tenant_id
    )
    assert customer.erased_at is not None and customer.name is None
    points = await rows(fapp.db, tables.contact_points)
    assert all(p.value.startswith("erased-") and not p.usable for p in points)
    (audit,) = await rows(fapp.db, tables.audit_log, tables.audit_log.c.action == "privacy.erase")
    assert audit.actor == "Dana (DPO)" and audit.target == f"customer:{customer.id}"
    # the guest is no longer found; a second erase is a 404, not a crash
    again = await client.post(
        "/v1/privacy/erase", json={"phone": PHONE}, headers={**headers, "X-Actor": "Dana"}
    )
    assert again.status_code == 404, again.text
    anonymous = await client.post("/v1/privacy/erase", json={"phone": PHONE}, headers=headers)
    assert anonymous.status_code == 400  # who did it is required


async def sms_order(app: App, order_id: str, phone: str) -> Any:
    guest = {"name": "M.", "phone": phone, "preferences": ["sms"]}
    return await app.order(
        order_id=order_id, number=order_id, status="confirmed", fulfillment="pickup", guest=guest
    )


async def test_an_erased_guest_who_had_opted_out_comes_back_opted_out(fapp: App) -> None:
    await populated(fapp)  # the guest replied STOP on SMS, then asks to be forgotten
    result = await fapp.container.privacy.erase(fapp.tenant_id, phone=PHONE, actor="Dana")
    assert result.counts["suppressions"] == 3  # SMS: order updates, follow-ups, marketing
    kept = await rows(fapp.db, tables.suppressions)
    assert {(k.kind, k.family) for k in kept} == {("phone", "sms")}
    assert all(len(k.fingerprint) == 64 and PHONE not in k.reason for k in kept)
    assert await scan(fapp, [PHONE, "2125550123", EMAIL, NAME]) == []

    # Months later the same number orders again (as a new guest: the old one is gone).
    await move_to(fapp, 90 * 24 * 60)
    new = await sms_order(fapp, "N-1", "(212) 555-0123")
    await worker(fapp).drain()
    (confirmed,) = await messages_of(fapp, int(new.order_id), "confirmed")
    assert confirmed.state == "skipped" and confirmed.skip_reason == "opted_out"
    assert "(suppression list)" in confirmed.reason, confirmed.reason
    events = await rows(
        fapp.db, tables.consent_events, tables.consent_events.c.source == "suppression list"
    )
    assert len(events) == 3 and not any(e.granted for e in events)
    assert all("kept on the suppression list" in e.evidence for e in events)

    # Another number is not affected, and the guest can still opt back in with START.
    other = await sms_order(fapp, "N-2", "+12125550199")
    await worker(fapp).drain()
    (sent,) = await messages_of(fapp, int(other.order_id), "confirmed")
    assert sent.state == "sent", sent.reason
    handler = fapp.container.callbacks.on_inbound
    assert handler is not None
    await handler(fapp.tenant_id, "sms", InboundMessage("SMin2", PHONE, "+15017122661", "START"))
    await fapp.status(int(new.order_id), "ready")
    await worker(fapp).drain()
    (ready,) = await messages_of(fapp, int(new.order_id), "ready")
    assert ready.state == "sent", ready.reason


async def test_erase_by_service_and_input_checks(fapp: App) -> None:
    await email_order(fapp)
    privacy = fapp.container.privacy
    with pytest.raises(PayloadError):
        await privacy.erase(fapp.tenant_id, phone=PHONE, email=EMAIL, actor="x")
    with pytest.raises(NotFoundError):
        await privacy.erase(fapp.other_tenant_id, email=EMAIL, actor="x")
    result = await privacy.erase(fapp.tenant_id, email=EMAIL, actor="cli")
    assert result.counts["contact_points"] == 2


async def test_retention_purge_drops_old_bodies_only(fapp: App) -> None:
    old = await email_order(fapp, "D-1")
    await worker(fapp).drain()
    await move_to(fapp, 100 * 24 * 60)
    new = await email_order(fapp, "D-9")
    await worker(fapp).drain()
    counts = await fapp.container.privacy.purge(parse_duration("90d"))
    assert counts["message_bodies"] >= 1 and counts["order_event_payloads"] >= 1
    for m in await messages_of(fapp, old):
        assert m.body is None and m.subject is None
    assert any(m.body for m in await messages_of(fapp, new))
    events = await rows(fapp.db, tables.order_events)
    assert {e.order_id for e in events if e.payload is None} == {old}
    assert any(e.payload for e in events if e.order_id == new)
    assert parse_duration("12h") == timedelta(hours=12)
    with pytest.raises(PayloadError):
        parse_duration("soon")


async def test_retention_days_in_the_config_is_applied_by_the_worker_in_batches(
    fapp: App,
) -> None:
    import asyncio

    from orderbell.engine.apply import apply_config
    from orderbell.engine.configfile import parse_config
    from tests.engine.harness import config_env
    from tests.engine.test_followups import config_text

    olds = [await email_order(fapp, f"D-{i}") for i in range(1, 4)]
    await worker(fapp).drain()
    await move_to(fapp, 31 * 24 * 60)
    new = await email_order(fapp, "D-9")
    await worker(fapp).drain()
    # Nothing configured: the worker's pass purges nothing.
    assert await fapp.container.privacy.apply_retention() == {}
    for o in olds:
        assert any(m.body for m in await messages_of(fapp, o))

    text = config_text(fapp.twilio, fapp.sendgrid, "").replace(
        "    name: Bistro Group\n", "    name: Bistro Group\n    retention_days: 30\n", 1
    )
    assert "retention_days: 30" in text
    env = config_env(fapp.twilio, fapp.sendgrid)
    await apply_config(fapp.container, parse_config(text, env=env))
    tenant = await one(fapp.db, tables.tenants, tables.tenants.c.id == fapp.tenant_id)
    assert tenant.retention_days == 30

    # One row of each kind per transaction: the loop still gets through all of them.
    totals = await fapp.container.privacy.purge(timedelta(days=30), batch=1)
    assert totals["message_bodies"] >= 3 and totals["order_event_payloads"] >= 3
    for o in olds:
        assert all(m.body is None for m in await messages_of(fapp, o))
    assert any(m.body for m in await messages_of(fapp, new))

    # The worker's own pass (run_background starts it) finds the newer order still young.
    stop = asyncio.Event()
    task = asyncio.create_task(fapp.container.privacy.run_retention(stop, interval=0.01))
    await asyncio.sleep(0.05)
    stop.set()
    await task
    assert any(m.body for m in await messages_of(fapp, new))
    await move_to(fapp, 62 * 24 * 60)  # minutes from the start
    done = await fapp.container.privacy.apply_retention()
    assert done[fapp.tenant_id]["message_bodies"] >= 1
    assert fapp.other_tenant_id not in done
    assert all(m.body is None for m in await messages_of(fapp, new))


# -- audit: every consent change and manual resend says who -------------------------------


async def test_each_consent_path_writes_an_audit_row(fapp: App, client: httpx.AsyncClient) -> None:
    await populated(fapp)  # keyword STOP and a manual resend by Sam
    audit = await rows(fapp.db, tables.audit_log)
    assert any(a.action == "consent.opt_out" and a.actor.startswith("guest") for a in audit)
    assert any(a.action == "order.resend" and a.actor == "Sam" for a in audit)
