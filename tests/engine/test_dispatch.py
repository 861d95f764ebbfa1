"""The worker against loopback Twilio: rendered and sent, retried on transient errors
(429 with Retry-After, 5xx, a reset connection), failed on permanent ones, and the checks
made again just before sending (deadline, consent, the order moved on, a lost lease)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from orderbell.engine.dispatch import Dispatcher
from orderbell.store import queue, tables
from orderbell.store.queue import Outcome
from tests.engine.harness import GUEST, PHONE, SENDER, App, count, one, rows
from tests.fakes.twilio import FakeTwilio

M, A = tables.messages, tables.attempts


def worker(app: App) -> Dispatcher:
    # rand 0.5: no jitter, so a retry is due exactly after the base delay (2 s, then 4 s)
    return app.container.dispatcher(rand=lambda: 0.5, worker_id="test-worker")


async def planned_sms(app: App, **order: Any) -> int:
    """A confirmed pickup order for Maria: its one planned SMS."""
    order.setdefault("number", "1001")
    result = await app.order(status="confirmed", fulfillment="pickup", guest=GUEST, **order)
    (message_id,) = result.planned
    return int(message_id)


async def message(app: App, message_id: int) -> Any:
    return await one(app.db, M, M.c.id == message_id)


async def attempts_of(app: App, message_id: int) -> list[Any]:
    return await rows(app.db, A, A.c.message_id == message_id)


async def log_of(app: App, message_id: int) -> list[str]:
    entries = await rows(app.db, tables.message_log, tables.message_log.c.message_id == message_id)
    return [e.event for e in entries]


# -- sent ----------------------------------------------------------------------------------


async def test_a_planned_sms_is_rendered_and_sent(app: App, twilio: FakeTwilio) -> None:
    mid = await planned_sms(app)
    assert await worker(app).drain() == 1

    (request,) = twilio.requests
    assert request.status == 201
    fields = request.fields
    assert fields["To"] == PHONE and fields["From"] == SENDER
    assert "1001" in fields["Body"] and "Maria" in fields["Body"]
    assert "/v1/callbacks/twilio_sms/" in fields["StatusCallback"]

    m = await message(app, mid)
    assert m.state == "sent" and m.provider == "twilio_sms"
    assert m.provider_message_id and m.provider_message_id.startswith("SM")
    assert m.provider_message_id in twilio.messages
    assert m.body == fields["Body"] and m.segments == 1
    assert m.sent_at == app.clock() and m.attempts == 1 and m.lease_until is None
    (attempt,) = await attempts_of(app, mid)
    assert (attempt.number, attempt.outcome, attempt.http_status) == (1, "sent", 201)
    assert attempt.provider_message_id == m.provider_message_id
    assert (attempt.channel, attempt.provider) == ("sms", "twilio_sms")
    assert await log_of(app, mid) == ["planned", "sent"]

    # nothing left to do: a second drain sends nothing
    assert await worker(app).drain() == 0
    assert len(twilio.requests) == 1


# -- transient errors are retried ----------------------------------------------------------


async def test_429_with_retry_after_is_retried_no_sooner_than_asked(
    app: App, twilio: FakeTwilio
) -> None:
    mid = await planned_sms(app)
    twilio.fail_next(1, 429, headers={"Retry-After": "120"})
    now = app.clock()
    assert await worker(app).drain() == 1

    m = await message(app, mid)
    assert m.state == "planned" and m.attempts == 1
    assert m.due_at >= now + timedelta(seconds=120)
    assert "attempt 1 failed" in m.reason and "retrying at" in m.reason
    (attempt,) = await attempts_of(app, mid)
    assert (attempt.outcome, attempt.http_status, attempt.error_code) == ("transient", 429, "20429")
    assert await log_of(app, mid) == ["planned", "retry"]

    app.clock.advance(119)
    assert await worker(app).drain() == 0  # not due yet
    app.clock.advance(1)
    assert await worker(app).drain() == 1
    assert (await message(app, mid)).state == "sent"
    assert len(twilio.requests) == 2


async def test_503_is_retried_and_succeeds_on_the_next_drain(app: App, twilio: FakeTwilio) -> None:
    mid = await planned_sms(app)
    twilio.fail_next(1, 503)
    start = app.clock()
    await worker(app).drain()
    m = await message(app, mid)
    assert m.state == "planned" and m.due_at == start + timedelta(seconds=2)

    app.clock.advance(2)
    assert await worker(app).drain() == 1
    m = await message(app, mid)
    assert m.state == "sent" and m.attempts == 2 and m.provider_message_id
    atts = await attempts_of(app, mid)
    assert [(a.number, a.outcome, a.http_status) for a in atts] == [
        (1, "transient", 503),
        (2, "sent", 201),
    ]
    assert len(twilio.requests) == 2


async def test_a_reset_connection_is_transient(app: App, twilio: FakeTwilio) -> None:
    mid = await planned_sms(app)
    twilio.reset_next(1)
    await worker(app).drain()
    m = await message(app, mid)
    assert m.state == "planned" and m.attempts == 1 and m.due_at > app.clock()
    (attempt,) = await attempts_of(app, mid)
    assert attempt.outcome == "transient" and attempt.http_status is None
    assert attempt.error


async def test_a_message_gives_up_when_the_next_try_would_be_too_late(
    app: App, twilio: FakeTwilio
) -> None:
    mid = await planned_sms(app)  # "confirmed" expires 30 minutes after it is due
    app.clock.advance(29 * 60)
    twilio.fail_next(1, 429, headers={"Retry-After": "600"})
    await worker(app).drain()
    m = await message(app, mid)
    assert m.state == "failed"
    assert "gave up" in m.reason and "deadline" in m.reason


# -- permanent errors fail at once ---------------------------------------------------------


async def test_a_permanent_twilio_error_fails_with_its_code(app: App, twilio: FakeTwilio) -> None:
    mid = await planned_sms(app)
    twilio.fail_next(
        1,
        400,
        body={
            "code": 21211,
            "message": f"The 'To' number {PHONE} is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400,
        },
    )
    await worker(app).drain()
    m = await message(app, mid)
    assert m.state == "failed" and m.attempts == 1
    assert "21211" in m.reason and "refused" in m.reason
    assert PHONE not in m.reason  # providers echo the number; our history masks it
    (attempt,) = await attempts_of(app, mid)
    assert (attempt.outcome, attempt.http_status, attempt.error_code) == ("permanent", 400, "21211")

    app.clock.advance(3600)
    assert await worker(app).drain() == 0  # never retried
    assert len(twilio.requests) == 1


def twilio_refusal(code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }


async def test_21610_on_send_records_the_opt_out_and_the_next_update_is_not_attempted(
    app: App, twilio: FakeTwilio
) -> None:
    """Twilio refuses: the guest texted STOP to our number (21610). The ledger learns it
    at once, audited; the next update for that guest is skipped without a provider call."""
    mid = await planned_sms(app)
    twilio.fail_next(
        1, 400, body=twilio_refusal(21610, "Attempt to send to unsubscribed recipient")
    )
    await worker(app).drain()
    m = await message(app, mid)
    assert m.state == "failed" and "21610" in m.reason
    events = await rows(app.db, tables.consent_events)
    assert events and {(e.family, e.granted, e.source) for e in events} == {
        ("sms", False, "twilio_sms")
    }
    assert all("21610" in e.evidence for e in events)
    audit = await one(app.db, tables.audit_log, tables.audit_log.c.action == "consent.opt_out")
    assert audit.actor == "provider twilio_sms"

    result = await app.order(
        order_id="A-2", number="1002", status="ready", fulfillment="pickup", guest=GUEST
    )
    await worker(app).drain()
    assert len(twilio.requests) == 1  # nothing more reached Twilio
    msgs = await rows(app.db, M, M.c.order_id == result.order_id)
    assert msgs and all(x.state == "skipped" and "twilio_sms" in x.reason for x in msgs), [
        (x.state, x.reason) for x in msgs
    ]


async def test_21211_on_send_marks_the_number_unusable(app: App, twilio: FakeTwilio) -> None:
    await planned_sms(app)
    twilio.fail_next(1, 400, body=twilio_refusal(21211, "The 'To' number is not valid."))
    await worker(app).drain()
    (point,) = await rows(app.db, tables.contact_points, tables.contact_points.c.kind == "phone")
    assert point.usable is False and "21211" in (point.note or "")
    assert await count(app.db, tables.consent_events) == 0  # unreachable is not an opt-out


# -- checked again just before it is sent --------------------------------------------------


async def test_a_message_past_its_deadline_is_skipped_unsent(app: App, twilio: FakeTwilio) -> None:
    mid = await planned_sms(app)
    app.clock.advance(31 * 60)
    assert await worker(app).drain() == 1
    m = await message(app, mid)
    assert (m.state, m.skip_reason) == ("skipped", "expired")
    assert "deadline" in m.reason
    assert twilio.requests == [] and await count(app.db, A) == 0


async def test_consent_revoked_after_planning_skips_the_message(
    app: App, twilio: FakeTwilio
) -> None:
    mid = await planned_sms(app)
    m = await message(app, mid)
    app.clock.advance(5)
    async with app.db.transaction() as conn:
        await conn.execute(
            sa.insert(tables.consent_events).values(
                tenant_id=app.tenant_id,
                customer_id=m.customer_id,
                family="sms",
                purpose="transactional",
                granted=False,
                source="keyword",
                evidence="STOP",
                occurred_at=app.clock(),
            )
        )
    assert await worker(app).drain() == 1
    m = await message(app, mid)
    assert (m.state, m.skip_reason) == ("skipped", "opted_out")
    assert "opted out of SMS" in m.reason
    assert twilio.requests == []


async def test_a_message_the_order_moved_past_is_superseded_unsent(
    app: App, twilio: FakeTwilio
) -> None:
    mid = await planned_sms(app)
    order_id = (await message(app, mid)).order_id
    w = worker(app)
    claimed = await w.claim(10)  # in flight: ingest leaves it to the worker
    moved = await app.status(order_id, "completed")
    assert moved.superseded == ()

    await w.process(claimed)
    m = await message(app, mid)
    assert m.state == "superseded"
    assert "already completed" in m.reason
    assert twilio.requests == []


async def test_finishing_with_a_stale_claim_token_writes_nothing(
    app: App, twilio: FakeTwilio, caplog: Any
) -> None:
    mid = await planned_sms(app)
    old_worker, new_worker = worker(app), worker(app)
    (stale,) = await old_worker.claim(10)
    app.clock.advance(app.container.settings.lease_seconds + 1)
    assert await queue.rescue_expired(app.db, now=app.clock()) == 1
    (fresh,) = await new_worker.claim(10)
    assert fresh.claim_token == stale.claim_token + 1

    # the old worker was only slow: it sends (at least once), but cannot record anything
    with caplog.at_level(logging.WARNING, logger="orderbell.dispatch"):
        await old_worker.process([stale])
    assert any("lease lost" in r.getMessage() for r in caplog.records)
    assert len(twilio.requests) == 1
    m = await message(app, mid)
    assert (m.state, m.claim_token, m.attempts) == ("sending", fresh.claim_token, 0)
    assert m.provider_message_id is None
    assert await attempts_of(app, mid) == []
    assert await log_of(app, mid) == ["planned", "requeued"]

    async with app.db.transaction() as conn:
        report = await queue.finish(
            conn,
            [Outcome(message_id=mid, claim_token=stale.claim_token, state="failed", reason="x")],
            now=app.clock(),
        )
    assert report.lost == (mid,) and report.finished == ()

    # the new owner finishes it
    await new_worker.process([fresh])
    m = await message(app, mid)
    assert m.state == "sent" and m.attempts == 1
    assert [a.outcome for a in await attempts_of(app, mid)] == ["sent"]


# -- the loop -------------------------------------------------------------------------------


async def test_the_running_worker_is_woken_by_a_new_order(app: App, twilio: FakeTwilio) -> None:
    # a long poll: only the wake-up can get the message out within a second
    app.container.settings = app.container.settings.with_(poll_seconds=5.0)
    stop = asyncio.Event()
    task = asyncio.create_task(worker(app).run(stop))
    try:
        await asyncio.sleep(0.3)  # the worker is idle, waiting
        assert twilio.requests == []
        posted = time.monotonic()
        await app.order(order_id="LOOP-1", number="4242", status="confirmed", guest=GUEST)
        (request,) = await twilio.wait_for(1, timeout=1.0)
        assert request.received_monotonic - posted < 1.0
        assert "4242" in request.fields["Body"]

        # stop: the next wake-up ends the loop, and nothing more is claimed
        stop.set()
        late = await app.order(order_id="LOOP-2", status="confirmed", guest=GUEST)
        await asyncio.wait_for(task, timeout=3)
    finally:
        stop.set()
        if not task.done():
            task.cancel()
    states = {r.order_id: r.state for r in await rows(app.db, M)}
    assert sorted(states.values()) == ["planned", "sent"]
    assert states[late.order_id] == "planned"
    assert len(twilio.requests) == 1
