"""Dispatch throughput across a mix of providers.

N due messages, spread evenly over eight providers (Twilio SMS, Plivo, SendGrid, Mailgun,
WhatsApp, Messenger, Viber, Pusher Beams), each served by its strict loopback fake in its
own process. One worker (the real ``Dispatcher.run`` loop) drains them; the program prints
messages/s overall and per provider, and how many ended sent.

    python benchmarks/dispatch_mix.py                       # SQLite
    python benchmarks/dispatch_mix.py --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import socket
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.channels import cases  # noqa: E402

from orderbell.bootstrap import build  # noqa: E402
from orderbell.config import Settings, normalise_db_url  # noqa: E402
from orderbell.domain.model import (  # noqa: E402
    ChannelFamily,
    Fulfillment,
    GuestInfo,
    OrderStatus,
    OrderUpdate,
)
from orderbell.engine.apply import apply_config  # noqa: E402
from orderbell.engine.configfile import parse_config  # noqa: E402
from orderbell.engine.ingest import Origin  # noqa: E402
from orderbell.store import queue, setup  # noqa: E402

#: provider case -> the guest contact it needs (family preference, GuestInfo fields)
MIX: dict[str, tuple[Any, str, Any]] = {
    "twilio_sms": (cases.TWILIO, "sms", lambda i: {"phone": phone(i)}),
    "plivo": (cases.PLIVO, "sms", lambda i: {"phone": phone(i)}),
    "sendgrid": (cases.SENDGRID, "email", lambda i: {"email": f"g{i}@example.com"}),
    "mailgun": (cases.MAILGUN, "email", lambda i: {"email": f"g{i}@example.com"}),
    "whatsapp": (cases.WHATSAPP, "whatsapp", lambda i: {"whatsapp": phone(i)}),
    "messenger": (
        cases.MESSENGER,
        "messenger",
        lambda i: {"messenger_psid": f"{6284012345678901 + i}"},
    ),
    "viber": (cases.VIBER, "viber", lambda i: {"viber_id": f"{i:012d}A="}),
    "pusher_beams": (cases.PUSHER_BEAMS, "push", lambda i: {"push_user": f"guest-{i}"}),
}


def phone(i: int) -> str:
    return f"+1212{200 + i // 10000:03d}{i % 10000:04d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(name: str, port: int, ready: Any) -> None:
    case = MIX[name][0]

    async def main() -> None:
        fake = case.fake(port=port)
        if name == "whatsapp":  # a template outside the 24-hour window: name, order, place, time
            fake.templates["order_update"] = (frozenset({"en_US", "en"}), 4)
        await fake.start()
        ready.set()
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())


def settings_for(name: str, port: int) -> dict[str, Any]:
    case = MIX[name][0]
    dummy = case.fake(port=port)
    dummy._port = port  # the real one runs in another process on this port
    settings = case.settings(dummy)
    if name == "whatsapp":
        settings["templates"] = {"confirmed": "order_update"}
    return settings


def config(ports: dict[str, int]) -> str:
    tenants = []
    for name, port in ports.items():
        family = MIX[name][1]
        tenants.append(
            {
                "slug": name.replace("_", "-"),
                "name": name,
                "locations": [{"slug": "main", "name": "Main", "timezone": "America/New_York"}],
                "channels": [
                    {"name": family, "provider": name, "settings": settings_for(name, port)}
                ],
            }
        )
    return json.dumps({"version": 1, "tenants": tenants})


async def scratch_pg(admin: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin)
    await conn.execute(sql)
    await conn.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    ports = {name: free_port() for name in MIX}
    procs = []
    for name, port in ports.items():
        ready = multiprocessing.Event()
        p = multiprocessing.Process(target=serve, args=(name, port, ready), daemon=True)
        p.start()
        procs.append(p)
        if not ready.wait(30):
            raise SystemExit(f"fake {name} did not start")
    data = Path(tempfile.mkdtemp(prefix="ob-mix-"))
    url = db_name = admin = None
    if args.postgres:
        admin = args.postgres.replace("postgresql+asyncpg://", "postgresql://")
        db_name = f"orderbell_bench_{secrets.token_hex(5)}"
        await scratch_pg(admin, f'CREATE DATABASE "{db_name}"')
        url = normalise_db_url(admin.rsplit("/", 1)[0] + "/" + db_name)
    settings = Settings(
        data_dir=data, database_url=url, concurrency=args.concurrency, batch_size=args.batch
    )
    container = build(settings)
    try:
        await container.db.upgrade()
        await apply_config(container, parse_config(config(ports), env={}))
        per = args.n // len(MIX)
        now = datetime.now(UTC)
        for k, (name, (_, family, contact)) in enumerate(MIX.items()):
            async with container.db.read() as conn:
                tenant_id = await setup.find_tenant(conn, name.replace("_", "-"))
            origin = Origin(tenant_id=tenant_id, source_key=f"api:{tenant_id}", kind="api")
            for start in range(0, per, 500):
                updates = [
                    OrderUpdate(
                        external_id=f"o-{i}",
                        event_id=f"e-{i}",
                        occurred_at=now,
                        status=OrderStatus.CONFIRMED,
                        number=str(1000 + i),
                        fulfillment=Fulfillment.PICKUP,
                        guest=GuestInfo(
                            name="Guest",
                            preferences=(ChannelFamily(family),),
                            **contact(k * 100_000 + i),
                        ),
                    )
                    for i in range(start, min(per, start + 500))
                ]
                await container.ingestor.ingest(origin, updates, None)
        total = per * len(MIX)
        stop = asyncio.Event()
        started = time.perf_counter()
        worker = asyncio.create_task(container.run_background(stop))
        deadline = time.monotonic() + args.timeout
        states: dict[str, int] = {}
        while time.monotonic() < deadline:
            states = await queue.count_by_state(container.db)
            if states.get("planned", 0) + states.get("sending", 0) == 0:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        stop.set()
        await worker
        async with container.db.read() as conn:
            import sqlalchemy as sa

            from orderbell.store.tables import messages

            rows = await conn.execute(
                sa.select(messages.c.provider, messages.c.state, sa.func.count()).group_by(
                    messages.c.provider, messages.c.state
                )
            )
            by = Counter({(r[0], r[1]): r[2] for r in rows})
    finally:
        await container.aclose()
        for p in procs:
            p.terminate()
        if db_name and admin:
            await scratch_pg(admin, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    sent = sum(v for (_, state), v in by.items() if state == "sent")
    return {
        "messages": total,
        "seconds": round(elapsed, 3),
        "sent": sent,
        "messages_per_s": round(sent / elapsed, 1),
        "states": states,
        "per_provider": {name: by.get((name, "sent"), 0) for name in MIX},
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=4000, help="messages in all (default 4000)")
    parser.add_argument("--concurrency", type=int, default=64, help="messages in flight")
    parser.add_argument("--batch", type=int, default=100, help="messages claimed at once")
    parser.add_argument("--postgres", help="PostgreSQL server URL to make a scratch database on")
    parser.add_argument("--timeout", type=float, default=300, help="give up after this long")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    r = asyncio.run(main(args))
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; database: {'PostgreSQL' if args.postgres else 'SQLite'}; "
        f"n={args.n} concurrency={args.concurrency} batch={args.batch}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(
        f"sent {r['sent']} of {r['messages']} in {r['seconds']} s: {r['messages_per_s']} messages/s"
    )
    for name, count in r["per_provider"].items():
        print(f"  {name:<14}{count:>6} sent")
    if args.json:
        print(json.dumps(r))


if __name__ == "__main__":
    cli()
