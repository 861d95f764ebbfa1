"""Concurrent first events for one new order (PostgreSQL runs them truly in parallel)."""

from __future__ import annotations

import asyncio

from orderbell.store import tables
from tests.engine.harness import GUEST, App, count, rows


async def test_simultaneous_first_events_make_one_order(app: App) -> None:
    data = {"order_id": "RACE-1", "number": "77", "fulfillment": "pickup", "guest": GUEST}
    results = await asyncio.gather(
        *(
            app.webhook({**data, "status": status}, f"evt-{i}")
            for i, status in enumerate(["confirmed", "confirmed", "in_kitchen", "ready"] * 3)
        )
    )
    outcomes = [r[0].outcome.value for r in results]
    assert outcomes.count("created") == 1
    assert await count(app.db, tables.orders) == 1
    assert await count(app.db, tables.order_events) == 12
    (order,) = await rows(app.db, tables.orders)
    assert order.status == "ready"
    # One message per notifying step at most, whatever the interleaving.
    triggers = [m.trigger for m in await rows(app.db, tables.messages)]
    assert len(triggers) == len(set(triggers))
