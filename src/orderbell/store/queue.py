"""The message queue over the ``messages`` table: claim, finish, heartbeat, rescue.

A message is *planned* until a worker claims it. ``claim`` moves due messages to
*sending*, gives each a lease (``lease_until``) and a new fencing token
(``claim_token + 1``). Every later transition of a claimed message is guarded by
``WHERE id = :id AND claim_token = :token AND state = 'sending'``, so a worker whose
message was rescued (or re-claimed by another worker) can never overwrite it.

The fence is the token and the state, not the clock: a worker may still finish a message
whose lease has expired as long as nobody rescued or re-claimed it in the meantime. Once
``rescue_expired`` put it back to *planned* (or another worker claimed it), the old
worker's ``finish`` is refused and reported in ``FinishReport.lost``.

Both partial indexes (``ix_messages_due``, ``ix_messages_leased``) only match queries
whose state test is a literal, not a bound parameter, so the states below are written
into the SQL text (``_PLANNED``, ``_SENDING``); PostgreSQL's generic plans for prepared
statements and SQLite's planner then both use them.

PostgreSQL lock order: claim and rescue lock with ``SKIP LOCKED`` (they never wait);
finish and extend_leases lock the rows they touch in id order. So no two queue
transactions can deadlock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.domain.model import MessageState
from orderbell.store.database import Database
from orderbell.store.tables import UtcDateTime, attempts, message_log, messages

m = messages

_PLANNED: sa.ColumnElement[str] = sa.literal_column("'planned'", sa.String())
_SENDING: sa.ColumnElement[str] = sa.literal_column("'sending'", sa.String())

#: the states ``finish`` may move a claimed message to (anything but ``sending``)
FINISH_STATES = frozenset(MessageState) - {MessageState.SENDING}


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message this worker now holds: send it, then ``finish`` with its token."""

    id: int
    claim_token: int
    attempts: int  # provider calls made before this claim
    tenant_id: int
    order_id: int | None
    customer_id: int | None
    trigger: str
    audience: str
    family: str | None
    channel: str | None
    recipient: str | None
    template: str
    locale: str
    purpose: str
    due_at: datetime
    expires_at: datetime | None
    idempotency_key: str
    lease_until: datetime


_CLAIMED_COLUMNS = tuple(m.c[f.name] for f in dataclasses.fields(ClaimedMessage))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One provider call, written to the ``attempts`` table."""

    number: int  # 1 for the first call ever made for this message
    provider: str
    outcome: str  # sent | transient | permanent
    started_at: datetime
    channel: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    error: str | None = None
    provider_message_id: str | None = None
    latency_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed message.

    ``state`` is the new state: ``sent``, ``failed``, ``skipped``, ``superseded``,
    ``cancelled`` (or ``delivered``, ``undelivered``), or ``planned`` to retry it at
    ``due_at``. Every other field left at ``None`` leaves its column as it is.
    ``attempts`` are the provider calls made during this claim (the message's attempt
    counter grows by their number); ``log`` holds ``(event, detail)`` rows for the
    message's history, written at ``finish``'s ``now``.
    """

    message_id: int
    claim_token: int
    state: str
    reason: str | None = None
    due_at: datetime | None = None
    skip_reason: str | None = None
    channel: str | None = None
    family: str | None = None
    recipient: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    body: str | None = None
    subject: str | None = None
    segments: int | None = None
    encoding: str | None = None
    sent_at: datetime | None = None
    attempts: Sequence[Attempt] = ()
    log: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        if self.state not in FINISH_STATES:
            raise ValueError(f"a claimed message cannot be finished as {self.state!r}")
        if self.state == MessageState.PLANNED and self.due_at is None:
            raise ValueError("a message planned again for a retry needs a due_at")


@dataclass(frozen=True, slots=True)
class FinishReport:
    """``finished``: ids written. ``lost``: ids whose lease was lost (nothing written)."""

    finished: tuple[int, ...] = ()
    lost: tuple[int, ...] = field(default=())


# -- statements -----------------------------------------------------------------------

_now = sa.bindparam("now", type_=UtcDateTime())


def _build_claim() -> sa.Update:
    # A CTE, not "id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)": PostgreSQL may
    # rescan such a subquery once per outer row, and each rescan skips the rows this
    # very UPDATE has just changed and returns fresh ones, claiming far more than n.
    # A WITH query is evaluated only once (and one with FOR UPDATE is never inlined).
    due = (
        sa.select(m.c.id)
        .where(m.c.state == _PLANNED, m.c.due_at <= _now)
        .order_by(m.c.due_at)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True)  # not rendered on SQLite, whose writes are serial
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    return (
        sa.update(m)
        # No second "state = 'planned'" here: the CTE's rows are locked by us and were
        # re-checked on their newest version, and a second state test would tempt the
        # planner to scan the partial index once per claimed row instead of the pk.
        .where(m.c.id == due.c.id)
        .values(
            state=_SENDING,
            lease_until=sa.bindparam("lease_until", type_=UtcDateTime()),
            claim_token=m.c.claim_token + 1,
            claimed_by=sa.bindparam("worker", type_=sa.String()),
            updated_at=_now,
        )
        .returning(*_CLAIMED_COLUMNS)
    )


def _keep(name: str, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """``COALESCE(:name, column)``: a None parameter leaves the column as it is."""
    return sa.func.coalesce(sa.bindparam(name, type_=column.type), column)


_KEPT = (
    "reason",
    "due_at",
    "skip_reason",
    "channel",
    "family",
    "recipient",
    "provider",
    "provider_message_id",
    "body",
    "subject",
    "segments",
    "encoding",
    "sent_at",
)

_CLAIM = _build_claim()

_OWNED = (
    sa.select(m.c.id, m.c.claim_token)
    .where(m.c.id.in_(sa.bindparam("ids", expanding=True)), m.c.state == _SENDING)
    .order_by(m.c.id)
    .with_for_update()
)

_FINISH = (
    sa.update(m)
    .where(
        m.c.id == sa.bindparam("b_id", type_=sa.BigInteger()),
        m.c.claim_token == sa.bindparam("b_token", type_=sa.BigInteger()),
        m.c.state == _SENDING,
    )
    .values(
        state=sa.bindparam("b_state", type_=sa.String()),
        lease_until=None,
        updated_at=sa.bindparam("b_now", type_=UtcDateTime()),
        attempts=m.c.attempts + sa.bindparam("b_calls", type_=sa.Integer()),
        **{name: _keep(f"b_{name}", m.c[name]) for name in _KEPT},
    )
)

_EXPIRED = (
    sa.select(m.c.id)
    .where(m.c.state == _SENDING, m.c.lease_until < _now)
    .order_by(m.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer()))
    .with_for_update(skip_locked=True)
    .cte("expired")
    .prefix_with("MATERIALIZED")
)

_RESCUE = (
    sa.update(m)
    .where(
        # The guard River #1302 lacked (never overwrite a message finished meanwhile) is
        # in the CTE: FOR UPDATE re-checks state and lease on the newest version of each
        # row and locks it until we commit. Repeating the tests here would only tempt the
        # planner to scan the partial index once per row instead of using the pk.
        m.c.id == _EXPIRED.c.id,
    )
    .values(state=_PLANNED, due_at=_now, lease_until=None, updated_at=_now)
    .returning(m.c.id, m.c.claimed_by)
)

_NEXT_DUE = sa.select(sa.func.min(m.c.due_at)).where(m.c.state == _PLANNED)

_COUNT_BY_STATE = sa.select(m.c.state, sa.func.count()).group_by(m.c.state)


# -- operations -----------------------------------------------------------------------


async def claim(
    db: Database, *, worker: str, limit: int, lease_seconds: float, now: datetime
) -> list[ClaimedMessage]:
    """Lease up to ``limit`` due planned messages to ``worker``, earliest due first."""
    if limit <= 0:
        return []
    params = {
        "now": now,
        "limit": limit,
        "lease_until": now + timedelta(seconds=lease_seconds),
        "worker": worker[:64],
    }
    async with db.transaction() as conn:
        rows = (await conn.execute(_CLAIM, params)).all()
    claimed = [ClaimedMessage(*row) for row in rows]
    claimed.sort(key=lambda c: (c.due_at, c.id))  # RETURNING keeps no order
    return claimed


async def finish(conn: AsyncConnection, results: Sequence[Outcome], now: datetime) -> FinishReport:
    """Record what became of claimed messages, inside the caller's write transaction.

    An outcome whose lease was lost (token changed, or no longer ``sending``) writes
    nothing, not even its attempts and log rows; its id is reported in ``lost``.
    """
    if not results:
        return FinishReport()
    by_id: dict[int, Outcome] = {}
    for outcome in results:
        if outcome.message_id in by_id:
            raise ValueError(f"two outcomes for message {outcome.message_id}")
        by_id[outcome.message_id] = outcome
    rows = await conn.execute(_OWNED, {"ids": _padded(sorted(by_id))})
    tokens = {row.id: row.claim_token for row in rows}
    owned = [o for o in results if tokens.get(o.message_id) == o.claim_token]
    lost = tuple(sorted(o.message_id for o in results if tokens.get(o.message_id) != o.claim_token))
    if owned:
        await conn.execute(_FINISH, [_finish_params(o, now) for o in owned])
        attempt_rows = [_attempt_row(o.message_id, a) for o in owned for a in o.attempts]
        if attempt_rows:
            await conn.execute(attempts.insert(), attempt_rows)
        log_rows = [
            {"message_id": o.message_id, "at": now, "event": event[:32], "detail": detail}
            for o in owned
            for event, detail in o.log
        ]
        if log_rows:
            await conn.execute(message_log.insert(), log_rows)
    return FinishReport(finished=tuple(sorted(o.message_id for o in owned)), lost=lost)


def _padded(values: list[Any]) -> list[Any]:
    """Repeat the last value up to a power of two: "IN (...)" lists then come in a few
    lengths only, so PostgreSQL prepares a handful of statements, not one per length."""
    size = 1
    while size < len(values):
        size *= 2
    return values + [values[-1]] * (size - len(values))


def _finish_params(o: Outcome, now: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {
        "b_id": o.message_id,
        "b_token": o.claim_token,
        "b_state": str(o.state),
        "b_now": now,
        "b_calls": len(o.attempts),
    }
    for name in _KEPT:
        params[f"b_{name}"] = getattr(o, name)
    return params


def _attempt_row(message_id: int, a: Attempt) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "number": a.number,
        "channel": a.channel,
        "provider": a.provider,
        "outcome": a.outcome,
        "http_status": a.http_status,
        "error_code": a.error_code,
        "error": a.error,
        "provider_message_id": a.provider_message_id,
        "latency_ms": a.latency_ms,
        "started_at": a.started_at,
    }


async def extend_leases(
    db: Database, claims: Sequence[tuple[int, int]], lease_seconds: float, now: datetime
) -> set[int]:
    """Heartbeat: push the lease of each ``(id, claim_token)`` to now + lease_seconds.

    Returns the ids whose lease was lost (rescued, re-claimed or no longer sending);
    the worker should stop working on those.
    """
    if not claims:
        return set()
    pairs = sorted(set(claims))
    held = (
        sa.select(m.c.id)
        .where(sa.tuple_(m.c.id, m.c.claim_token).in_(_padded(pairs)), m.c.state == _SENDING)
        .order_by(m.c.id)
        .with_for_update()
        .cte("held")
        .prefix_with("MATERIALIZED")
    )
    stmt = (
        sa.update(m)
        .where(m.c.id == held.c.id, m.c.state == _SENDING)
        .values(lease_until=now + timedelta(seconds=lease_seconds), updated_at=now)
        .returning(m.c.id)
    )
    async with db.transaction() as conn:
        extended = set((await conn.execute(stmt)).scalars())
    return {message_id for message_id, _ in pairs} - extended


async def rescue_expired(db: Database, now: datetime, *, batch: int = 1000) -> int:
    """Put messages whose lease expired before ``now`` back to planned, due now.

    Their worker is presumed dead. If it is alive after all, its ``finish`` will be
    refused (the fence), so the message is sent at least once, possibly twice.
    """
    total = 0
    while True:
        async with db.transaction() as conn:
            rows = (await conn.execute(_RESCUE, {"now": now, "limit": batch})).all()
            if rows:
                await conn.execute(
                    message_log.insert(),
                    [
                        {
                            "message_id": row.id,
                            "at": now,
                            "event": "requeued",
                            "detail": f"lease of worker {row.claimed_by or '?'} expired; requeued",
                        }
                        for row in rows
                    ],
                )
        total += len(rows)
        if len(rows) < batch:
            return total


async def supersede(
    conn: AsyncConnection,
    *,
    order_id: int,
    triggers: Collection[str],
    now: datetime,
    reason: str,
) -> list[int]:
    """Mark the order's still-planned messages for ``triggers`` superseded.

    Messages already being sent are left alone (the worker rechecks the order before
    sending). Returns the ids superseded, each with a history row.
    """
    if not triggers:
        return []
    stmt = (
        sa.update(m)
        .where(
            m.c.order_id == order_id,
            m.c.state == _PLANNED,
            m.c.trigger.in_(sorted({str(t) for t in triggers})),
        )
        .values(state=MessageState.SUPERSEDED.value, reason=reason, updated_at=now)
        .returning(m.c.id)
    )
    ids = sorted((await conn.execute(stmt)).scalars())
    if ids:
        await conn.execute(
            message_log.insert(),
            [{"message_id": i, "at": now, "event": "superseded", "detail": reason} for i in ids],
        )
    return ids


async def next_due_at(db: Database) -> datetime | None:
    """When the earliest planned message is due (None: nothing planned)."""
    async with db.read() as conn:
        due: datetime | None = (await conn.execute(_NEXT_DUE)).scalar()
    return due


async def count_by_state(db: Database) -> dict[str, int]:
    """How many messages are in each state (states with none are absent)."""
    async with db.read() as conn:
        return {state: count for state, count in (await conn.execute(_COUNT_BY_STATE)).all()}
