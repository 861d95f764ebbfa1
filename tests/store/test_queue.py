"""The message queue: claim, finish, heartbeat, rescue, supersede (on both engines)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from orderbell.store import queue
from orderbell.store.database import Database
from orderbell.store.queue import Attempt, Outcome
from orderbell.store.tables import attempts, message_log
from tests.store.dbfixtures import EPOCH, create_order, create_tenant, fetch_messages, seed_messages

NOW = EPOCH + timedelta(minutes=10)
LEASE = 30.0


def at(seconds: float):
    return EPOCH + timedelta(seconds=seconds)


async def claim(db: Database, limit: int = 100, *, now=NOW, worker: str = "w1"):
    return await queue.claim(db, worker=worker, limit=limit, lease_seconds=LEASE, now=now)


async def finish(db: Database, outcomes, now=NOW) -> queue.FinishReport:
    async with db.transaction() as conn:
        return await queue.finish(conn, outcomes, now)


async def rows_of(db: Database, table: sa.Table) -> list:
    async with db.read() as conn:
        return (await conn.execute(sa.select(table).order_by(table.c.id))).all()


# -- claim ----------------------------------------------------------------------------


async def test_claim_takes_only_due_planned_messages(db: Database) -> None:
    tenant = await create_tenant(db)
    due = await seed_messages(db, 3, tenant_id=tenant, due_at=lambda i: at(i))
    future = await seed_messages(db, 1, tenant_id=tenant, due_at=NOW + timedelta(seconds=1))
    done = await seed_messages(db, 1, tenant_id=tenant, state="sent")
    skipped = await seed_messages(db, 1, tenant_id=tenant, state="skipped")

    claimed = await claim(db, now=NOW)

    assert [c.id for c in claimed] == due
    first = claimed[0]
    assert first.claim_token == 1 and first.attempts == 0
    assert first.lease_until == NOW + timedelta(seconds=LEASE)
    assert first.due_at == at(0) and first.due_at.tzinfo is not None
    assert (first.trigger, first.audience, first.family, first.channel) == (
        "ready",
        "guest",
        "sms",
        "sms",
    )
    assert first.tenant_id == tenant and first.idempotency_key.startswith("test:")
    rows = await fetch_messages(db)
    for i in due:
        assert rows[i].state == "sending" and rows[i].claimed_by == "w1"
        assert rows[i].claim_token == 1 and rows[i].updated_at == NOW
    for i in future + done + skipped:
        assert rows[i].claim_token == 0 and rows[i].state != "sending"


async def test_claim_respects_limit_and_due_order(db: Database) -> None:
    ids = await seed_messages(db, 10, due_at=lambda i: at(100 - i))  # later ids due earlier
    claimed = await claim(db, limit=3)
    assert [c.id for c in claimed] == [ids[9], ids[8], ids[7]]
    assert (await queue.count_by_state(db)) == {"planned": 7, "sending": 3}


async def test_a_second_claim_skips_claimed_messages(db: Database) -> None:
    ids = await seed_messages(db, 5)
    first = await claim(db, limit=3, worker="a")
    second = await claim(db, limit=10, worker="b")
    assert {c.id for c in first} | {c.id for c in second} == set(ids)
    assert not {c.id for c in first} & {c.id for c in second}
    assert await claim(db) == []
    assert await claim(db, limit=0) == []


# -- finish ---------------------------------------------------------------------------


async def test_finish_sent_records_fields_attempts_and_history(db: Database) -> None:
    [mid] = await seed_messages(db, 1)
    [c] = await claim(db)
    attempt = Attempt(
        number=1,
        provider="twilio",
        outcome="sent",
        started_at=NOW,
        channel="sms",
        http_status=201,
        provider_message_id="SM1",
        latency_ms=42,
    )
    report = await finish(
        db,
        [
            Outcome(
                message_id=mid,
                claim_token=c.claim_token,
                state="sent",
                reason="sent via sms",
                provider="twilio",
                provider_message_id="SM1",
                body="Your order is ready",
                segments=1,
                encoding="GSM-7",
                sent_at=NOW,
                attempts=[attempt],
                log=[("sent", "accepted by twilio as SM1")],
            )
        ],
        now=NOW + timedelta(seconds=1),
    )
    assert report == queue.FinishReport(finished=(mid,), lost=())
    row = (await fetch_messages(db))[mid]
    assert row.state == "sent" and row.lease_until is None and row.attempts == 1
    assert (row.provider, row.provider_message_id, row.body) == (
        "twilio",
        "SM1",
        "Your order is ready",
    )
    assert (row.segments, row.encoding, row.sent_at) == (1, "GSM-7", NOW)
    assert row.reason == "sent via sms" and row.updated_at == NOW + timedelta(seconds=1)
    assert row.channel == "sms" and row.recipient == "+15550100000"  # None left them alone
    [a] = await rows_of(db, attempts)
    assert (a.message_id, a.number, a.provider, a.outcome, a.http_status) == (
        mid,
        1,
        "twilio",
        "sent",
        201,
    )
    [entry] = await rows_of(db, message_log)
    assert (entry.message_id, entry.event, entry.at) == (mid, "sent", NOW + timedelta(seconds=1))


async def test_finish_a_batch_with_retry_skip_and_failover(db: Database) -> None:
    ids = await seed_messages(db, 3)
    claimed = {c.id: c for c in await claim(db)}
    retry_at = NOW + timedelta(minutes=1)
    call = Attempt(number=1, provider="twilio", outcome="transient", started_at=NOW, error="503")
    report = await finish(
        db,
        [
            Outcome(
                ids[0],
                claimed[ids[0]].claim_token,
                "planned",
                due_at=retry_at,
                attempts=[call],
                log=[("retry", "503; next try soon")],
            ),
            Outcome(
                ids[1],
                claimed[ids[1]].claim_token,
                "skipped",
                skip_reason="opted_out",
                reason="not sent: opted out",
                log=[("skipped", "opted out")],
            ),
            Outcome(
                ids[2],
                claimed[ids[2]].claim_token,
                "sent",
                channel="email",
                family="email",
                recipient="guest@example.com",
                provider="sendgrid",
                attempts=[
                    call,
                    Attempt(number=2, provider="sendgrid", outcome="sent", started_at=NOW),
                ],
            ),
        ],
        now=NOW,
    )
    assert report.finished == tuple(sorted(ids)) and report.lost == ()
    rows = await fetch_messages(db)
    assert rows[ids[0]].state == "planned" and rows[ids[0]].due_at == retry_at
    assert rows[ids[0]].attempts == 1 and rows[ids[0]].lease_until is None
    assert rows[ids[1]].state == "skipped" and rows[ids[1]].skip_reason == "opted_out"
    assert rows[ids[1]].attempts == 0
    assert (rows[ids[2]].channel, rows[ids[2]].family, rows[ids[2]].recipient) == (
        "email",
        "email",
        "guest@example.com",
    )
    assert rows[ids[2]].attempts == 2
    assert len(await rows_of(db, attempts)) == 3
    # the retry comes back when due, with a new fencing token
    assert await claim(db, now=retry_at - timedelta(seconds=1)) == []
    [again] = await claim(db, now=retry_at)
    assert (again.id, again.claim_token, again.attempts) == (ids[0], 2, 1)


async def test_finish_with_a_stale_token_is_refused_and_changes_nothing(db: Database) -> None:
    ids = await seed_messages(db, 2)
    claimed = {c.id: c for c in await claim(db)}
    before = await fetch_messages(db)
    report = await finish(
        db,
        [
            Outcome(
                ids[0],
                claimed[ids[0]].claim_token + 1,
                "sent",
                provider="x",
                attempts=[Attempt(1, "x", "sent", NOW)],
                log=[("sent", "x")],
            ),
            Outcome(ids[1], claimed[ids[1]].claim_token, "sent"),
        ],
    )
    assert report.lost == (ids[0],) and report.finished == (ids[1],)
    after = await fetch_messages(db)
    assert after[ids[0]] == before[ids[0]]
    assert await rows_of(db, attempts) == [] and await rows_of(db, message_log) == []


async def test_finish_of_an_unclaimed_message_is_refused(db: Database) -> None:
    [mid] = await seed_messages(db, 1)
    report = await finish(db, [Outcome(mid, 0, "sent")])
    assert report.lost == (mid,)
    assert (await fetch_messages(db))[mid].state == "planned"


def test_outcome_is_checked() -> None:
    with pytest.raises(ValueError, match="sending"):
        Outcome(1, 1, "sending")
    with pytest.raises(ValueError, match="due_at"):
        Outcome(1, 1, "planned")
    with pytest.raises(ValueError):
        Outcome(1, 1, "bogus")


async def test_two_outcomes_for_one_message_are_a_bug(db: Database) -> None:
    async with db.transaction() as conn:
        with pytest.raises(ValueError, match="two outcomes"):
            await queue.finish(conn, [Outcome(1, 1, "sent"), Outcome(1, 1, "failed")], NOW)


async def test_finish_nothing(db: Database) -> None:
    assert await finish(db, []) == queue.FinishReport()


# -- leases: heartbeat and rescue -----------------------------------------------------


async def test_extend_leases_reports_lost_claims(db: Database) -> None:
    ids = await seed_messages(db, 3)
    claimed = {c.id: c for c in await claim(db)}
    later = NOW + timedelta(seconds=20)
    lost = await queue.extend_leases(
        db,
        [
            (ids[0], claimed[ids[0]].claim_token),
            (ids[1], 99),
            (ids[2], claimed[ids[2]].claim_token),
        ],
        LEASE,
        later,
    )
    assert lost == {ids[1]}
    rows = await fetch_messages(db)
    assert rows[ids[0]].lease_until == later + timedelta(seconds=LEASE)
    assert rows[ids[1]].lease_until == NOW + timedelta(seconds=LEASE)
    assert await queue.extend_leases(db, [], LEASE, later) == set()


async def test_rescue_requeues_expired_leases_only(db: Database) -> None:
    tenant = await create_tenant(db)
    old = await seed_messages(db, 2, tenant_id=tenant)
    [c_old1, c_old2] = await claim(db, now=NOW)
    young = await seed_messages(db, 1, tenant_id=tenant)
    later = NOW + timedelta(seconds=LEASE + 1)
    [c_young] = await claim(db, now=later - timedelta(seconds=5))
    # one of the expired ones is finished before the rescuer runs: it must stay finished
    await finish(db, [Outcome(c_old2.id, c_old2.claim_token, "sent")], now=later)

    assert await queue.rescue_expired(db, later) == 1

    rows = await fetch_messages(db)
    assert rows[c_old1.id].state == "planned" and rows[c_old1.id].due_at == later
    assert rows[c_old1.id].lease_until is None
    assert rows[c_old2.id].state == "sent"
    assert rows[young[0]].state == "sending"
    [entry] = await rows_of(db, message_log)
    assert entry.message_id == old[0] and entry.event == "requeued"
    assert "lease of worker w1 expired" in entry.detail
    # the dead worker's late finish is fenced off; the re-claim gets a new token
    assert (await finish(db, [Outcome(c_old1.id, c_old1.claim_token, "sent")])).lost == (c_old1.id,)
    [again] = await claim(db, now=later)
    assert again.id == c_old1.id and again.claim_token == c_old1.claim_token + 1
    assert (await finish(db, [Outcome(c_old1.id, c_old1.claim_token, "sent")])).lost == (c_old1.id,)
    assert (await finish(db, [Outcome(again.id, again.claim_token, "sent")])).finished == (
        again.id,
    )
    assert c_young.id == young[0]


async def test_finish_after_lease_expiry_but_before_rescue_succeeds(db: Database) -> None:
    """The fence is the token and the state, not the clock."""
    [mid] = await seed_messages(db, 1)
    [c] = await claim(db)
    late = NOW + timedelta(seconds=LEASE * 3)
    assert (await finish(db, [Outcome(mid, c.claim_token, "sent")], now=late)).finished == (mid,)
    assert await queue.rescue_expired(db, late) == 0
    assert (await fetch_messages(db))[mid].state == "sent"


async def test_rescue_works_in_batches(db: Database) -> None:
    await seed_messages(db, 5)
    await claim(db)
    assert await queue.rescue_expired(db, NOW + timedelta(hours=1), batch=2) == 5
    assert await queue.count_by_state(db) == {"planned": 5}


# -- supersede, next due, counts ------------------------------------------------------


async def test_supersede_touches_only_planned_messages_of_the_order(db: Database) -> None:
    tenant = await create_tenant(db)
    order, other = await create_order(db, tenant), await create_order(db, tenant)
    placed = await seed_messages(db, 2, tenant_id=tenant, order_id=order, trigger="placed")
    in_kitchen = await seed_messages(
        db,
        1,
        tenant_id=tenant,
        order_id=order,
        trigger="in_kitchen",
        due_at=NOW + timedelta(hours=1),
    )
    ready = await seed_messages(
        db, 1, tenant_id=tenant, order_id=order, trigger="ready", due_at=NOW + timedelta(hours=1)
    )
    other_placed = await seed_messages(
        db, 1, tenant_id=tenant, order_id=other, trigger="placed", due_at=NOW + timedelta(hours=1)
    )
    [sending] = await claim(db, limit=1)  # one "placed" message is being sent
    assert sending.id == placed[0]

    async with db.transaction() as conn:
        ids = await queue.supersede(
            conn,
            order_id=order,
            triggers={"placed", "in_kitchen"},
            now=NOW,
            reason="order is ready",
        )
    assert ids == sorted([placed[1], in_kitchen[0]])
    rows = await fetch_messages(db)
    assert rows[placed[0]].state == "sending"
    assert rows[placed[1]].state == "superseded" and rows[placed[1]].reason == "order is ready"
    assert rows[in_kitchen[0]].state == "superseded"
    assert rows[ready[0]].state == "planned" and rows[other_placed[0]].state == "planned"
    assert {e.message_id for e in await rows_of(db, message_log)} == set(ids)
    async with db.transaction() as conn:
        assert await queue.supersede(conn, order_id=order, triggers=(), now=NOW, reason="-") == []


async def test_next_due_at_and_counts(db: Database) -> None:
    assert await queue.next_due_at(db) is None
    assert await queue.count_by_state(db) == {}
    await seed_messages(db, 2, due_at=lambda i: NOW + timedelta(seconds=10 - i))
    await seed_messages(db, 1, due_at=at(0), state="sent")
    assert await queue.next_due_at(db) == NOW + timedelta(seconds=9)
    assert await queue.count_by_state(db) == {"planned": 2, "sent": 1}
