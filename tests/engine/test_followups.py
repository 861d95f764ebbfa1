"""Follow-ups with a controlled clock, on both databases: the delay timer (one guest
message and one staff alert per late order, superseded by a later status, re-armed by a
new ETA), PagerDuty-style incidents triggered and resolved, feedback requests (once, after
completion, held by quiet hours, blocked by follow-up consent, not repeated within the
period) and coalescing of statuses that arrive close together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from orderbell.channels.outbox import read_outbox
from orderbell.engine.dispatch import Dispatcher
from orderbell.engine.followups import FollowupTimer
from orderbell.store import tables
from tests.engine import harness
from tests.engine.harness import (
    GUEST,
    INTEGRATION,
    PHONE,
    SENDER,
    START,
    App,
    one,
    rows,
)
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio

M, E, T = tables.messages, tables.order_events, tables.order_timers


def config_text(twilio: FakeTwilio, sendgrid: FakeSendGrid, followups: str) -> str:
    """``bistro`` with delay, staff-chat, incident and feedback rules; ``cafe`` bare."""
    block = f"        followups:\n{followups}" if followups else ""
    return f"""version: 1
tenants:
  - slug: bistro
    name: Bistro Group
    locations:
      - slug: downtown
        name: Bistro Downtown
        timezone: America/New_York
        phone: "+12125550100"
{block}
    integrations:
      - id: {INTEGRATION}
        source: generic
        location: downtown
        secret: ${{T_WEBHOOK_SECRET}}
    channels:
      - name: sms
        provider: twilio_sms
        settings:
          account_sid: {twilio.account_sid}
          auth_token: ${{T_TWILIO_TOKEN}}
          from_number: "{SENDER}"
          base_url: {twilio.base_url}
      - name: email
        provider: sendgrid
        settings:
          api_key: ${{T_SENDGRID_KEY}}
          from_email: orders@bistro.example
          base_url: {sendgrid.base_url}
      - name: kitchen
        provider: outbox
        family: chat
      - name: pager
        provider: outbox
        family: incident
    rules:
      - trigger: confirmed
      - trigger: in_kitchen
      - trigger: ready
      - trigger: out_for_delivery
      - trigger: completed
      - trigger: cancelled
      - trigger: resend
      - trigger: delayed
      - trigger: delayed
        audience: staff:kitchen
      - trigger: delayed
        audience: staff:pager
      - trigger: feedback
        purpose: followup
  - slug: cafe
    name: Cafe Other
    locations:
      - slug: uptown
        name: Cafe Uptown
    integrations:
      - id: cafe-pos
        source: generic
        location: uptown
        secret: ${{T_OTHER_SECRET}}
"""


async def make_app(
    db_url: str,
    data_dir: Path,
    twilio: FakeTwilio,
    sendgrid: FakeSendGrid,
    followups: str = "",
    start: datetime = START,
) -> App:
    config = config_text(twilio, sendgrid, followups)
    return await harness.make_app(db_url, data_dir, twilio, sendgrid, config=config, start=start)


@pytest_asyncio.fixture
async def app(
    db_url: str, tmp_path: Path, twilio: FakeTwilio, sendgrid: FakeSendGrid
) -> AsyncIterator[App]:
    built = await make_app(db_url, tmp_path / "data", twilio, sendgrid)
    try:
        yield built
    finally:
        await built.container.aclose()


def worker(app: App) -> Dispatcher:
    return app.container.dispatcher(rand=lambda: 0.5, worker_id="test-worker")


def timer(app: App) -> FollowupTimer:
    c = app.container
    return FollowupTimer(c.db, c.tenants, c.ingestor, clock=app.clock)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


async def move_to(app: App, minutes: float) -> None:
    app.clock.now = at(minutes)


async def messages_of(app: App, order_id: int, trigger: str | None = None) -> list[Any]:
    where = [M.c.order_id == order_id]
    if trigger:
        where.append(M.c.trigger == trigger)
    return await rows(app.db, M, *where)


async def timer_row(app: App, order_id: int) -> Any:
    (row,) = await rows(app.db, T, T.c.order_id == order_id, order_by=T.c.order_id)
    return row


def outbox(app: App) -> list[dict[str, Any]]:
    return read_outbox(app.container.settings.outbox_path)


async def pickup(app: App, **fields: Any) -> int:
    """Order 1001, confirmed at 18:00, pickup, for Maria; its confirmed SMS is sent."""
    fields.setdefault("number", "1001")
    fields.setdefault("guest", GUEST)
    result = await app.order(status="confirmed", fulfillment="pickup", **fields)
    await worker(app).drain()
    return int(result.order_id)


# -- a late order ------------------------------------------------------------------------


async def test_a_late_order_gets_one_guest_message_and_one_staff_alert(app: App) -> None:
    order_id = await pickup(app)  # no promised time: due 18:20 (pickup prep time 20m)
    t = await timer_row(app, order_id)
    assert (t.expected_at, t.basis, t.check_at) == (at(20), "prep_time", at(25))

    await move_to(app, 24.9)
    assert await timer(app).tick() == 0
    assert await messages_of(app, order_id, "delayed") == []

    await move_to(app, 25)
    assert await timer(app).tick() == 1
    delayed = await messages_of(app, order_id, "delayed")
    assert sorted(m.audience for m in delayed) == ["guest", "staff:kitchen"]
    guest = next(m for m in delayed if m.audience == "guest")
    assert guest.idempotency_key == f"{order_id}:delayed:guest:eta-202603021835"
    assert (guest.channel, guest.recipient, guest.state) == ("sms", PHONE, "planned")
    order = await one(app.db, tables.orders, tables.orders.c.id == order_id)
    assert order.eta == at(35)  # the new estimate: 10 minutes from now
    (event,) = [e for e in await rows(app.db, E, E.c.order_id == order_id) if e.kind == "timer"]
    assert event.outcome == "delayed"
    assert "not ready by 18:20 UTC" in event.note and "18:35 UTC" in event.note

    await worker(app).drain()
    texts = [r.fields["Body"] for r in app.twilio.requests]
    assert len(texts) == 2 and "running late" in texts[1] and "1:35" in texts[1]
    (alert,) = outbox(app)
    assert alert["channel"] == "chat" and alert["metadata"]["order_id"] == str(order_id)
    assert "pagerduty_action" not in alert["metadata"]

    # later passes before the next threshold change nothing
    for minute in (26, 30, 39.9):
        await move_to(app, minute)
        await timer(app).tick()
    assert len(await messages_of(app, order_id, "delayed")) == 2
    assert (await timer_row(app, order_id)).announcements == 1


async def test_ready_before_the_timer_means_no_delay_message(app: App) -> None:
    order_id = await pickup(app)
    await move_to(app, 19)
    await app.status(order_id, "ready")
    assert (await timer_row(app, order_id)).check_at is None
    await move_to(app, 30)
    assert await timer(app).tick() == 0
    assert await messages_of(app, order_id, "delayed") == []


async def test_ready_arriving_first_supersedes_the_pending_delay_messages(app: App) -> None:
    order_id = await pickup(app)
    await move_to(app, 25)
    await timer(app).tick()
    assert len(await messages_of(app, order_id, "delayed")) == 2
    await move_to(app, 25.1)
    moved = await app.status(order_id, "ready")  # before the worker got to them
    delayed = await messages_of(app, order_id, "delayed")
    assert {m.state for m in delayed} == {"superseded"}
    assert set(moved.superseded) >= {m.id for m in delayed}
    await worker(app).drain()
    assert not any("running late" in r.fields["Body"] for r in app.twilio.requests)
    assert outbox(app) == []


async def test_an_eta_slip_re_arms_and_is_told_only_past_the_configured_amount(app: App) -> None:
    order_id = await pickup(app, promised_at=at(20).isoformat())
    await move_to(app, 25)
    await timer(app).tick()  # first delay message: new estimate 18:35
    await worker(app).drain()
    assert len(await messages_of(app, order_id, "delayed")) == 2

    await move_to(app, 27)
    small = await app.status(order_id, "confirmed", eta=at(40).isoformat())  # slips 5 min
    assert small.planned == ()
    t = await timer_row(app, order_id)
    assert t.expected_at == at(35) and t.announcements == 1
    assert t.check_at == at(40)  # the incident threshold comes before 18:40 + grace

    await move_to(app, 28)
    big = await app.status(order_id, "confirmed", eta=at(50).isoformat())  # 15 min past 18:35
    guest = [m for m in await messages_of(app, order_id, "delayed") if m.audience == "guest"]
    assert [m.idempotency_key.rsplit(":", 1)[1] for m in guest] == [
        "eta-202603021835",
        "eta-202603021850",
    ]
    assert guest[1].id in big.planned
    t = await timer_row(app, order_id)
    assert (t.expected_at, t.announcements, t.basis) == (at(50), 2, "announced")
    await worker(app).drain()
    assert "1:50" in app.twilio.requests[-1].fields["Body"]


async def test_a_new_eta_before_the_promise_re_arms_the_timer_quietly(app: App) -> None:
    order_id = await pickup(app)  # the prep-time guess: 18:20
    await move_to(app, 5)
    await app.status(order_id, "in_kitchen", eta=at(40).isoformat())
    t = await timer_row(app, order_id)
    assert (t.expected_at, t.basis, t.check_at) == (at(40), "promised", at(45))
    await move_to(app, 30)
    assert await timer(app).tick() == 0
    await move_to(app, 45)
    assert await timer(app).tick() == 1
    guest = [m for m in await messages_of(app, order_id, "delayed") if m.audience == "guest"]
    assert len(guest) == 1 and guest[0].idempotency_key.endswith("eta-202603021855")


# -- incidents ---------------------------------------------------------------------------


async def test_an_incident_is_triggered_past_the_second_threshold_and_resolved(
    app: App,
) -> None:
    order_id = await pickup(app)
    await move_to(app, 25)
    await timer(app).tick()
    await move_to(app, 39)
    await timer(app).tick()
    assert [m for m in await messages_of(app, order_id) if m.audience == "staff:pager"] == []

    await move_to(app, 40)  # 20 minutes past the 18:20 it was due
    await timer(app).tick()
    (page,) = [m for m in await messages_of(app, order_id) if m.audience == "staff:pager"]
    assert page.idempotency_key == f"{order_id}:delayed:staff:pager:incident"
    t = await timer_row(app, order_id)
    assert (t.incident, t.late_since) == ("open", at(20))
    await worker(app).drain()
    triggered = [e for e in outbox(app) if e["channel"] == "incident"]
    assert [e["metadata"]["pagerduty_action"] for e in triggered] == ["trigger"]
    assert triggered[0]["metadata"]["order_id"] == str(order_id)

    await move_to(app, 42)
    await app.status(order_id, "ready")
    t = await timer_row(app, order_id)
    assert (t.incident, t.check_at) == ("resolved", None)
    await worker(app).drain()
    pages = [e for e in outbox(app) if e["channel"] == "incident"]
    assert [e["metadata"]["pagerduty_action"] for e in pages] == ["trigger", "resolve"]
    assert {e["metadata"]["order_id"] for e in pages} == {str(order_id)}
    resolve = next(m for m in await messages_of(app, order_id) if "resolve" in m.idempotency_key)
    assert resolve.state == "sent" and "no longer late" in resolve.reason


async def test_a_resolve_superseded_at_once_by_the_next_status_is_sent_anyway(
    app: App,
) -> None:
    order_id = await pickup(app)
    for minute in (25, 40):
        await move_to(app, minute)
        await timer(app).tick()
    await worker(app).drain()
    await move_to(app, 41)
    await app.status(order_id, "ready")
    await app.status(order_id, "completed")  # supersedes the planned resolve
    await worker(app).drain()
    actions = [e["metadata"]["pagerduty_action"] for e in outbox(app) if e["channel"] == "incident"]
    assert actions == ["trigger", "resolve"]
    await app.status(order_id, "cancelled")  # stale after completed: nothing more
    await worker(app).drain()
    assert len([e for e in outbox(app) if e["channel"] == "incident"]) == 2


# -- feedback ----------------------------------------------------------------------------


async def delivered(app: App, order_id: str = "D-1", **guest: Any) -> int:
    result = await app.order(
        order_id=order_id,
        number=order_id,
        status="completed",
        fulfillment="delivery",
        guest={**GUEST, **guest},
    )
    return int(result.order_id)


async def test_feedback_is_requested_once_after_completion(app: App) -> None:
    order_id = await delivered(app)
    (feedback,) = await messages_of(app, order_id, "feedback")
    assert (feedback.purpose, feedback.state, feedback.due_at) == ("followup", "planned", at(30))
    await worker(app).drain()
    assert not any("How was" in r.fields["Body"] for r in app.twilio.requests)

    await move_to(app, 30)
    await worker(app).drain()
    body = app.twilio.requests[-1].fields["Body"]
    order = await one(app.db, tables.orders, tables.orders.c.id == order_id)
    assert "How was order #D-1" in body and f"/t/{order.tracking_token}" in body
    assert (await one(app.db, M, M.c.id == feedback.id)).state == "sent"

    # another order of the same guest ten days later: not asked again
    await move_to(app, 10 * 24 * 60)
    second = await delivered(app, "D-2")
    (again,) = await messages_of(app, second, "feedback")
    assert (again.state, again.skip_reason) == ("skipped", "frequency_cap")
    assert "asked already (order #D-1" in again.reason and "30 days" in again.reason


async def test_feedback_waits_out_quiet_hours(
    db_url: str, tmp_path: Path, twilio, sendgrid
) -> None:
    # 22:00 in New York (EST): due 22:30, held until 08:00 the next morning
    app = await make_app(
        db_url, tmp_path / "q", twilio, sendgrid, start=datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
    )
    try:
        order_id = await delivered(app)
        (feedback,) = await messages_of(app, order_id, "feedback")
        assert feedback.due_at == datetime(2026, 3, 3, 13, 0, tzinfo=UTC)
        assert "held until 2026-03-03 08:00 local time" in feedback.reason
        app.clock.now = datetime(2026, 3, 3, 12, 59, tzinfo=UTC)
        await worker(app).drain()
        assert not any("How was" in r.fields["Body"] for r in app.twilio.requests)
        app.clock.now = datetime(2026, 3, 3, 13, 0, tzinfo=UTC)
        await worker(app).drain()
        assert "How was" in app.twilio.requests[-1].fields["Body"]
    finally:
        await app.container.aclose()


@pytest.mark.parametrize(
    ("start", "held_until"),
    [
        # Sat 7 Mar 2026 22:00 EST; clocks go forward that night: 08:00 EDT is 12:00 UTC
        (datetime(2026, 3, 8, 3, 0, tzinfo=UTC), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
        # Sat 31 Oct 2026 22:00 EDT; clocks go back that night: 08:00 EST is 13:00 UTC
        (datetime(2026, 11, 1, 2, 0, tzinfo=UTC), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
    ],
    ids=["spring-forward", "fall-back"],
)
async def test_across_a_dst_change_feedback_waits_for_0800_and_ready_goes_at_once(
    db_url: str, tmp_path: Path, twilio, sendgrid, start: datetime, held_until: datetime
) -> None:
    app = await make_app(db_url, tmp_path / "dst", twilio, sendgrid, start=start)
    try:
        order_id = await delivered(app)  # completed at 22:00 local: feedback due 22:30
        (feedback,) = await messages_of(app, order_id, "feedback")
        assert feedback.due_at == held_until, feedback.reason
        assert "08:00 local time" in feedback.reason
        # 22:30 local: a "ready" text for another order is not held by quiet hours
        app.clock.now = start + timedelta(minutes=30)
        ready = await app.order(
            order_id="R-1",
            number="R-1",
            status="ready",
            fulfillment="pickup",
            guest={**GUEST, "phone": "+12125550177"},
        )
        (ready_msg,) = await messages_of(app, int(ready.order_id), "ready")
        assert ready_msg.due_at == app.clock.now
        await worker(app).drain()
        bodies = [r.fields["Body"] for r in app.twilio.requests]
        assert any("ready" in b.lower() for b in bodies)
        assert not any("How was" in b for b in bodies)
        app.clock.now = held_until - timedelta(minutes=1)
        await worker(app).drain()
        assert not any("How was" in r.fields["Body"] for r in app.twilio.requests)
        app.clock.now = held_until
        await worker(app).drain()
        assert "How was" in app.twilio.requests[-1].fields["Body"]
    finally:
        await app.container.aclose()


async def test_a_follow_up_opt_out_blocks_the_feedback_request(app: App) -> None:
    order_id = await delivered(app)
    (feedback,) = await messages_of(app, order_id, "feedback")
    await move_to(app, 10)  # the guest revokes follow-ups before it is due
    await app.order(
        order_id="D-1",
        guest={
            "phone": GUEST["phone"],
            "consent": [{"channel": "sms", "purpose": "followup", "granted": False}],
        },
    )
    await move_to(app, 30)
    await worker(app).drain()
    m = await one(app.db, M, M.c.id == feedback.id)
    assert (m.state, m.skip_reason) == ("skipped", "opted_out")
    assert "opted out of follow-up messages by SMS" in m.reason
    assert not any("How was" in r.fields["Body"] for r in app.twilio.requests)

    # and a later order of the opted-out guest plans it skipped straight away
    second = await delivered(app, "D-2")
    (again,) = await messages_of(app, second, "feedback")
    assert (again.state, again.skip_reason) == ("skipped", "opted_out")


async def test_no_feedback_for_dine_in_by_default(app: App) -> None:
    result = await app.order(status="completed", fulfillment="dine_in", guest=GUEST)
    assert await messages_of(app, result.order_id, "feedback") == []


# -- coalescing --------------------------------------------------------------------------


async def test_statuses_within_the_coalescing_window_send_only_the_latest(
    db_url: str, tmp_path: Path, twilio: FakeTwilio, sendgrid: FakeSendGrid
) -> None:
    app = await make_app(db_url, tmp_path / "c", twilio, sendgrid, "          coalesce: 20s\n")
    try:
        created = await app.order(status="in_kitchen", fulfillment="pickup", guest=GUEST)
        (kitchen,) = created.planned
        assert (await one(app.db, M, M.c.id == kitchen)).due_at == START + timedelta(seconds=20)
        app.clock.advance(10)
        await worker(app).drain()  # nothing due yet
        assert app.twilio.requests == []
        ready = await app.status(created.order_id, "ready")
        assert kitchen in ready.superseded
        app.clock.advance(20)
        await worker(app).drain()
        (sent,) = app.twilio.requests
        assert "ready for pickup" in sent.fields["Body"]
    finally:
        await app.container.aclose()


async def test_without_coalescing_statuses_go_at_once(app: App) -> None:
    created = await app.order(status="in_kitchen", fulfillment="pickup", guest=GUEST)
    (kitchen,) = created.planned
    assert (await one(app.db, M, M.c.id == kitchen)).due_at == START
