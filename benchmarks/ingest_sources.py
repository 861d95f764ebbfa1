"""Ingest throughput per order source: the generic webhook against Shopify (signature check)
and Square (signature check + an order fetch from a loopback fake Square API per webhook).

Each source gets N webhooks that each create a new order with one guest (so each plans one
SMS); they go through the same path a request takes after the HTTP layer
(``WebhookService.handle``: find integration, verify, parse, fetch, one transaction) at a
set concurrency. The fake Square API runs in its own process. Nothing is dispatched.

    python benchmarks/ingest_sources.py                       # SQLite
    python benchmarks/ingest_sources.py --postgres postgresql://postgres@127.0.0.1:5432/test

Prints events/s per source and each source's ratio to the generic webhook, and the CPU
Order Bell itself spends per event (this process only) with the same ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import secrets
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orderbell.bootstrap import build  # noqa: E402
from orderbell.config import Settings, normalise_db_url  # noqa: E402
from orderbell.engine.apply import apply_config  # noqa: E402
from orderbell.engine.configfile import parse_config  # noqa: E402
from orderbell.sources import shopify, square  # noqa: E402
from orderbell.sources.generic import sign as generic_sign  # noqa: E402

GENERIC_SECRET = "whsec_" + base64.b64encode(b"benchmark-generic-secret!").decode()
SHOPIFY_SECRET = "shpss_benchmark_secret"
SHOP = "bench.myshopify.com"
SQUARE_KEY = "sq-benchmark-signature-key"
SQUARE_URL = "https://orderbell.example/v1/webhooks/square/sq"
SQUARE_TOKEN = "EAAA-benchmark-token"
MERCHANT = "5S9MXCS9Y99KK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def phone(i: int) -> str:
    return f"+1212{200 + i // 10000:03d}{i % 10000:04d}"


def serve_square(port: int, n: int, rounds: int, ready: Any) -> None:
    """The fake Square API in its own process, serving N orders per round (and warm-up)."""
    from tests.fakes.square_api import FakeSquare, order

    async def main() -> None:
        fake = FakeSquare(access_token=SQUARE_TOKEN, port=port)
        for rnd in range(-1, rounds):
            base = block("square", rnd)
            for i in range(n if rnd >= 0 else 20):
                fake.add_order(
                    order(
                        f"sq-{rnd}-{i}",
                        state="RESERVED",
                        phone=phone(base + i),
                        version=2,
                        email=f"guest{base + i}@example.com",
                    )
                )
        await fake.start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def config(square_base: str) -> str:
    return f"""version: 1
tenants:
  - slug: bench
    name: Bench
    locations: [{{slug: main, name: Main, timezone: America/New_York}}]
    integrations:
      - {{id: gen, source: generic, location: main, secret: "{GENERIC_SECRET}"}}
      - id: shop
        source: shopify
        location: main
        secret: {SHOPIFY_SECRET}
        settings: {{shop_domain: {SHOP}}}
      - id: sq
        source: square
        location: main
        secret: {SQUARE_KEY}
        settings:
          notification_url: {SQUARE_URL}
          access_token: {SQUARE_TOKEN}
          merchant_id: {MERCHANT}
          api_base_url: {square_base}
    channels:
      - {{name: sms, provider: outbox, family: sms}}
"""


Request = tuple[str, str, bytes, dict[str, str]]


SOURCES_ORDER = ("generic", "shopify", "square")


def block(source: str, rnd: int) -> int:
    """Each source and round gets new guests: a block of 10,000 numbers (round -1: warm-up)."""
    return (SOURCES_ORDER.index(source) * 10 + rnd + 1) * 10_000


def generic_requests(n: int, rnd: int) -> list[Request]:
    prefix = f"r{rnd}-"
    base = block("generic", rnd)
    now = int(time.time())
    out = []
    for i in range(n):
        body = json.dumps(
            {
                "type": "order.created",
                "data": {
                    "order_id": f"{prefix}g-{i}",
                    "number": str(i),
                    "status": "confirmed",
                    # the same guest details the Shopify and Square orders carry, so the comparison
                    # measures the source (signature, parsing, fetch), not a different guest
                    "fulfillment": "pickup",
                    "guest": {
                        "name": "Guest Test",
                        "phone": phone(base + i),
                        "email": f"guest{base + i}@example.com",
                        "locale": "en",
                    },
                },
            }
        ).encode()
        out.append(
            ("generic", "gen", body, generic_sign(GENERIC_SECRET, f"{prefix}m-{i}", now, body))
        )
    return out


def shopify_requests(n: int, rnd: int) -> list[Request]:
    prefix = f"r{rnd}-"
    base = block("shopify", rnd)
    out = []
    for i in range(n):
        order = {
            "id": 10_000_000 + base + i,
            "name": f"#{1000 + i}",
            "order_number": 1000 + i,
            "created_at": "2026-03-02T13:00:00-05:00",
            "updated_at": "2026-03-02T13:00:00-05:00",
            "financial_status": "paid",
            "cancelled_at": None,
            "test": False,
            "email": f"guest{base + i}@example.com",
            "phone": phone(base + i),
            "customer_locale": "en",
            "customer": {
                "first_name": "Guest",
                "last_name": "Test",
                "phone": phone(base + i),
                "email": f"guest{base + i}@example.com",
            },
            "shipping_lines": [{"title": "Pickup at Main", "code": "Pickup", "source": "shopify"}],
            "shipping_address": None,
            "fulfillments": [],
            "line_items": [],
            "total_price": "23.50",
            "currency": "USD",
        }
        body = json.dumps(order).encode()
        out.append(
            (
                "shopify",
                "shop",
                body,
                shopify.sign(
                    SHOPIFY_SECRET,
                    body,
                    topic="orders/create",
                    shop=SHOP,
                    webhook_id=f"{prefix}wh-{i}",
                ),
            )
        )
    return out


def square_requests(n: int, rnd: int) -> list[Request]:
    prefix = f"r{rnd}-"
    out = []
    for i in range(n):
        # warm-up and measured run fetch the same orders; the event ids differ
        item = {
            "order_id": f"sq-{rnd}-{i}",
            "version": 2,
            "location_id": "FPYCBCHYMXFK1",
            "state": "OPEN",
            "created_at": "2026-03-02T17:55:00Z",
            "updated_at": "2026-03-02T18:00:00Z",
        }
        body = json.dumps(
            {
                "merchant_id": MERCHANT,
                "type": "order.updated",
                "event_id": f"{prefix}ev-{i}",
                "created_at": "2026-03-02T18:00:00Z",
                "data": {
                    "type": "order_updated",
                    "id": f"sq-{rnd}-{i}",
                    "object": {"order_updated": item},
                },
            }
        ).encode()
        out.append(("square", "sq", body, square.sign(SQUARE_KEY, SQUARE_URL, body)))
    return out


async def run_source(
    container: Any, requests: list[Any], concurrency: int
) -> tuple[float, float, int]:
    """Wall seconds, this process's CPU seconds (Order Bell's own work: not the fake
    Square API's process, not the database server's), and the number of failures."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while not queue.empty():
            name, key, body, headers = queue.get_nowait()
            try:
                got = await container.webhooks.receive(name, key, body, headers)
                if got.deferred is not None or not got.results:
                    errors += 1
            except Exception as exc:  # count and go on: the figure says how many failed
                errors += 1
                if errors < 3:
                    print(f"  {name}: {exc!r}", file=sys.stderr)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu, errors


async def scratch_pg(admin: str) -> str:
    import asyncpg

    name = f"orderbell_bench_{secrets.token_hex(5)}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name


async def drop_pg(admin: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    ready = multiprocessing.Event()
    fake = multiprocessing.Process(
        target=serve_square, args=(port, args.n, args.rounds, ready), daemon=True
    )
    fake.start()
    if not ready.wait(30):
        raise SystemExit("the fake Square API did not start")
    data = Path(tempfile.mkdtemp(prefix="ob-bench-"))
    db_name = None
    url = None
    if args.postgres:
        admin = args.postgres.replace("postgresql+asyncpg://", "postgresql://")
        db_name = await scratch_pg(admin)
        url = normalise_db_url(admin.rsplit("/", 1)[0] + "/" + db_name)
    container = build(Settings(data_dir=data, database_url=url))
    results: dict[str, Any] = {}
    try:
        await container.db.upgrade()
        await apply_config(container, parse_config(config(f"http://127.0.0.1:{port}"), env={}))
        # warm up: caches, prepared statements, the pooled HTTP connection
        for make in (generic_requests, shopify_requests, square_requests):
            await run_source(container, make(20, -1), 4)
        # rounds alternate the sources (A B C A B C ...) so a drifting machine affects
        # each alike; the median round is reported
        rates: dict[str, list[float]] = {name: [] for name in SOURCES_ORDER}
        cpu_ms: dict[str, list[float]] = {name: [] for name in SOURCES_ORDER}
        failed: dict[str, int] = dict.fromkeys(SOURCES_ORDER, 0)
        makers = {
            "generic": generic_requests,
            "shopify": shopify_requests,
            "square": square_requests,
        }
        for rnd in range(args.rounds):
            for name in SOURCES_ORDER:
                elapsed, cpu, errors = await run_source(
                    container, makers[name](args.n, rnd), args.concurrency
                )
                rates[name].append(args.n / elapsed)
                cpu_ms[name].append(1000 * cpu / args.n)
                failed[name] += errors
        for name in SOURCES_ORDER:
            runs = sorted(rates[name])
            results[name] = {
                "events": args.n,
                "rounds": [round(r, 1) for r in rates[name]],
                "events_per_s": round(runs[len(runs) // 2], 1),
                "cpu_ms_per_event": round(sorted(cpu_ms[name])[len(runs) // 2], 2),
                "errors": failed[name],
            }
    finally:
        await container.aclose()
        fake.terminate()
        if db_name and args.postgres:
            await drop_pg(args.postgres.replace("postgresql+asyncpg://", "postgresql://"), db_name)
    base = results["generic"]["events_per_s"]
    base_cpu = results["generic"]["cpu_ms_per_event"]
    for r in results.values():
        r["ratio_to_generic"] = round(r["events_per_s"] / base, 3)
        # throughput Order Bell's own CPU allows, relative to generic (fake excluded)
        r["cpu_ratio_to_generic"] = round(base_cpu / r["cpu_ms_per_event"], 3)
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="webhooks per source (default 1000)")
    parser.add_argument("-c", "--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--postgres", help="PostgreSQL URL of a server to make a scratch database on"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; database: {'PostgreSQL' if args.postgres else 'SQLite'}; "
        f"n={args.n} c={args.concurrency}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(
        f"{'source':<10}{'events/s':>10}{'ratio':>8}{'CPU ms/event':>14}{'CPU ratio':>11}"
        f"{'errors':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:<10}{r['events_per_s']:>10}{r['ratio_to_generic']:>8}"
            f"{r['cpu_ms_per_event']:>14}{r['cpu_ratio_to_generic']:>11}{r['errors']:>8}"
        )
    print(
        "events/s: median round, wall clock; CPU ms/event: this process only (the fake "
        "Square API and the database run elsewhere); ratios are relative to generic"
    )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    cli()
