#!/usr/bin/env python
"""The hot path in one process, one thing at a time: what one webhook and one message cost.

No HTTP server and no concurrency: this calls the engine directly, so the figures are the
CPU our own code (and SQLAlchemy, the driver, the HTTP client) spends, without the
scheduling noise of a loaded 2-core machine.

1. Starts a fake Twilio process, prepares a scratch database (SQLite file, or a scratch
   PostgreSQL database with ``--postgres URL``), writes the same YAML as
   ``pipeline.py`` and runs ``orderbell db upgrade`` and ``orderbell apply``.
2. INGEST: builds the container in this process (``bootstrap.build``) and feeds N signed
   webhooks, one after the other, to ``WebhookService.handle`` (verify, parse, one
   transaction). Prints CPU and wall time per webhook, and SQL statements, transactions
   and database round trips per webhook.
3. DISPATCH: for each ``--batch-sizes`` B, claims B due messages and runs
   ``Dispatcher.process`` on them (re-check, render, send to the fake, finish), batch
   after batch. Prints CPU and wall per message and statements per batch.
4. With ``--profile``, runs each phase under cProfile with a CPU-time clock and prints
   the functions with the most own and cumulative time.

    .venv/bin/python benchmarks/hotpath.py                      # SQLite
    .venv/bin/python benchmarks/hotpath.py --postgres postgresql://postgres@127.0.0.1:5432/test --profile

A database round trip is counted as: one per statement execution (an executemany is one
pipelined call), plus BEGIN and COMMIT/ROLLBACK of each transaction (autocommit reads
have none). On SQLite a "round trip" is a hop to aiosqlite's thread, not a network call.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import io
import json
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# --src DIR must win over the installed package before anything imports orderbell
for _i, _arg in enumerate(sys.argv):
    if _arg == "--src" and _i + 1 < len(sys.argv):
        sys.path.insert(0, str(Path(sys.argv[_i + 1]).resolve()))
    elif _arg.startswith("--src="):
        sys.path.insert(0, str(Path(_arg.split("=", 1)[1]).resolve()))

import pipeline as pl  # noqa: E402  (also puts the repository root on sys.path)

from orderbell.sources.generic import sign  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/hotpath.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-n",
        "--count",
        type=int,
        default=600,
        metavar="N",
        help="webhooks per dispatch batch size measured (default 600)",
    )
    p.add_argument(
        "--batch-sizes",
        default="1,10,100",
        metavar="B,B,...",
        help="dispatch batch sizes to measure (default 1,10,100)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=50,
        metavar="W",
        help="webhooks and messages processed first, not measured (default 50)",
    )
    p.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="PostgreSQL admin URL on loopback; a scratch database is created and dropped",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="run each phase under cProfile (CPU-time clock) and print the top functions",
    )
    p.add_argument("--top", type=int, default=25, help="functions listed per profile (default 25)")
    p.add_argument(
        "--uvloop",
        action="store_true",
        help="run on uvloop (default: the plain asyncio loop, as `orderbell` runs)",
    )
    p.add_argument(
        "--src",
        type=Path,
        default=None,
        metavar="DIR",
        help="import Order Bell from this source directory instead of the installed "
        "package (also used for the `orderbell` CLI calls)",
    )
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    a = p.parse_args(argv)
    try:
        a.sizes = [int(x) for x in a.batch_sizes.split(",") if x.strip()]
    except ValueError:
        p.error("--batch-sizes takes integers, e.g. 1,10,100")
    if not a.sizes or min(a.sizes) < 1 or a.count < 1:
        p.error("-n and batch sizes must be >= 1")
    if a.postgres and not pl._is_loopback(pl.urlsplit(a.postgres).hostname or ""):
        p.error("--postgres must point at a loopback address")
    return a


class Counter:
    """SQL statements and transactions seen by the engines (SQLAlchemy events)."""

    def __init__(self) -> None:
        self.c: collections.Counter[str] = collections.Counter()
        self.kinds: collections.Counter[str] = collections.Counter()

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event

        sync = engine.sync_engine

        @event.listens_for(sync, "before_cursor_execute")
        def _stmt(
            conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
        ) -> None:
            self.c["statements"] += 1
            head = " ".join(statement.split()[:3]).upper()
            if head.startswith("SELECT PG_NOTIFY"):
                head = "SELECT pg_notify"
            self.kinds[head[:60]] += 1

        def autocommit(conn: Any) -> bool:
            return conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"

        @event.listens_for(sync, "begin")
        def _begin(conn: Any) -> None:
            if not autocommit(conn):
                self.c["begin"] += 1

        @event.listens_for(sync, "commit")
        def _commit(conn: Any) -> None:
            if not autocommit(conn):
                self.c["commit"] += 1

        @event.listens_for(sync, "rollback")
        def _rollback(conn: Any) -> None:
            if not autocommit(conn):
                self.c["rollback"] += 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.c)

    def delta(self, before: dict[str, int]) -> dict[str, int]:
        return {k: self.c[k] - before.get(k, 0) for k in self.c}


def round_trips(d: dict[str, int], *, sqlite: bool) -> int:
    # SQLite: Order Bell issues its own BEGIN / BEGIN IMMEDIATE as a statement (counted);
    # PostgreSQL: asyncpg sends BEGIN itself (no statement event), so count the begin.
    begin = 0 if sqlite else d.get("begin", 0)
    return d.get("statements", 0) + begin + d.get("commit", 0) + d.get("rollback", 0)


def _package_of(path: str) -> str:
    if path.startswith("~") or path.startswith("<built-in") or path == "~":
        return "builtins (C calls)"
    for marker in ("site-packages/",):
        if marker in path:
            return path.split(marker, 1)[1].split("/", 1)[0]
    if "/src/orderbell/" in path:
        rest = path.split("/src/orderbell/", 1)[1]
        return "orderbell/" + rest.split("/", 1)[0].removesuffix(".py")
    if "/benchmarks/" in path:
        return "benchmark"
    if path.startswith("<"):
        return path.split(" ", 1)[0].strip("<>") or "generated"
    return "stdlib/" + Path(path).stem if "/lib/python3" in path else path


def by_package(prof: cProfile.Profile) -> list[tuple[str, float]]:
    """Own (tottime) CPU by package, as shares of the whole profile."""
    st = pstats.Stats(prof)
    sums: collections.Counter[str] = collections.Counter()
    total = 0.0
    for (path, _line, _func), (_cc, _nc, tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        pkg = _package_of(path)
        if pkg.startswith("stdlib/asyncio") or pkg in ("stdlib/selectors",):
            pkg = "asyncio (event loop)"
        sums[pkg] += tt
        total += tt
    return [(k, 100 * v / total) for k, v in sums.most_common(20)] if total else []


def profile_text(prof: cProfile.Profile, top: int) -> dict[str, Any]:
    out: dict[str, Any] = {"by_package": by_package(prof)}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.strip_dirs().sort_stats(key).print_stats(top)
        text = buf.getvalue()
        start = text.find("   ncalls")
        out[key] = text[start:] if start >= 0 else text
    return out


async def run(
    a: argparse.Namespace,
    data: Path,
    db_url: str | None,
    fake_base: str,
    token: str,
    account_sid: str,
) -> dict[str, Any]:
    from orderbell.bootstrap import build
    from orderbell.config import Settings
    from orderbell.store import queue

    settings = Settings(
        data_dir=data, database_url=db_url, public_url="http://127.0.0.1:8080", log_level="warning"
    )
    c = build(settings)
    counter = Counter()
    counter.attach(c.db.engine)
    if c.db.is_sqlite:
        c.db.read  # noqa: B018 - engines exist now
        counter.attach(c.db._read_engine)
    sqlite = c.db.is_sqlite
    result: dict[str, Any] = {}
    total = a.warmup + a.count * len(a.sizes)
    numbers = pl.guest_numbers(total)
    run_id = secrets.token_hex(3)

    async def ingest(indices: range) -> None:
        for i in indices:
            body = pl.webhook_body(f"hp-{run_id}-{i}", f"H{i}", numbers[i][0], f"Guest {i}")
            headers = sign(pl.WEBHOOK_SECRET, f"msg_{run_id}_{i}", int(time.time()), body)
            await c.webhooks.handle("generic", pl.INTEGRATION, body, headers)

    dispatcher = c.dispatcher()

    async def dispatch(limit: int, batch: int) -> int:
        done = 0
        for _ in range(limit * 2 + 10):
            if done >= limit:
                break
            claimed = await dispatcher.claim(min(batch, limit - done))
            if not claimed:
                break
            await dispatcher.process(claimed)
            done += len(claimed)
        return done

    try:
        # warm-up: pools, prepared statements, caches, templates
        await ingest(range(a.warmup))
        await dispatch(a.warmup, 100)

        # INGEST
        n = a.count * len(a.sizes)
        before = counter.snapshot()
        kinds_before = collections.Counter(counter.kinds)
        prof = cProfile.Profile(time.process_time) if a.profile else None
        cpu0, t0 = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        await ingest(range(a.warmup, a.warmup + n))
        if prof:
            prof.disable()
        cpu1, t1 = time.process_time(), time.perf_counter()
        d = counter.delta(before)
        kinds = counter.kinds - kinds_before
        result["ingest"] = {
            "webhooks": n,
            "cpu_ms_per_webhook": 1000 * (cpu1 - cpu0) / n,
            "wall_ms_per_webhook": 1000 * (t1 - t0) / n,
            "webhooks_per_s_sequential": n / (t1 - t0),
            "statements_per_webhook": d.get("statements", 0) / n,
            "transactions_per_webhook": d.get("commit", 0) / n,
            "round_trips_per_webhook": round_trips(d, sqlite=sqlite) / n,
            "statement_kinds_per_webhook": {k: v / n for k, v in kinds.most_common()},
            "profiled": bool(prof),
        }
        if prof:
            result["ingest"]["profile"] = profile_text(prof, a.top)

        # DISPATCH, one batch size after another
        result["dispatch"] = []
        for size in a.sizes:
            before = counter.snapshot()
            kinds_before = collections.Counter(counter.kinds)
            http_before = time.perf_counter()
            prof = cProfile.Profile(time.process_time) if a.profile else None
            cpu0, t0 = time.process_time(), time.perf_counter()
            if prof:
                prof.enable()
            done = await dispatch(a.count, size)
            if prof:
                prof.disable()
            cpu1, t1 = time.process_time(), time.perf_counter()
            del http_before
            d = counter.delta(before)
            kinds = counter.kinds - kinds_before
            batches = max(1, -(-done // size))
            entry = {
                "batch_size": size,
                "messages": done,
                "cpu_ms_per_message": 1000 * (cpu1 - cpu0) / max(1, done),
                "wall_ms_per_message": 1000 * (t1 - t0) / max(1, done),
                "messages_per_s_sequential": done / (t1 - t0),
                "statements_per_batch": d.get("statements", 0) / batches,
                "round_trips_per_batch": round_trips(d, sqlite=sqlite) / batches,
                "round_trips_per_message": round_trips(d, sqlite=sqlite) / max(1, done),
                "statement_kinds_per_batch": {k: v / batches for k, v in kinds.most_common()},
                "profiled": bool(prof),
            }
            if prof:
                entry["profile"] = profile_text(prof, a.top)
            result["dispatch"].append(entry)
        result["left_planned"] = (await queue.count_by_state(c.db)).get("planned", 0)
    finally:
        await c.aclose()
    return result


def print_report(r: dict[str, Any], a: argparse.Namespace) -> None:
    i = r["ingest"]
    note = " (under cProfile: CPU inflated, see the shares)" if i["profiled"] else ""
    print()
    print(f"== ingest: WebhookService.handle, {i['webhooks']} webhooks one at a time{note} ==")
    print(
        f"CPU {i['cpu_ms_per_webhook']:.3f} ms/webhook, wall {i['wall_ms_per_webhook']:.3f} ms "
        f"({i['webhooks_per_s_sequential']:.0f}/s sequential)"
    )
    print(
        f"{i['statements_per_webhook']:.1f} statements, {i['transactions_per_webhook']:.2f} "
        f"transactions, {i['round_trips_per_webhook']:.1f} round trips per webhook"
    )
    for k, v in i["statement_kinds_per_webhook"].items():
        print(f"   {v:5.2f}  {k}")
    if i.get("profile"):
        print("-- own time by package --")
        for k, v in i["profile"]["by_package"]:
            print(f"   {v:5.1f}%  {k}")
        print("-- own time --")
        print(i["profile"]["tottime"])
        print("-- cumulative --")
        print(i["profile"]["cumulative"])
    for d in r["dispatch"]:
        note = " (under cProfile)" if d["profiled"] else ""
        print()
        print(
            f"== dispatch: claim + Dispatcher.process, batches of {d['batch_size']}, "
            f"{d['messages']} messages{note} =="
        )
        print(
            f"CPU {d['cpu_ms_per_message']:.3f} ms/message, wall {d['wall_ms_per_message']:.3f} ms "
            f"({d['messages_per_s_sequential']:.0f}/s one batch at a time)"
        )
        print(
            f"{d['statements_per_batch']:.1f} statements, {d['round_trips_per_batch']:.1f} round "
            f"trips per batch ({d['round_trips_per_message']:.2f} per message)"
        )
        for k, v in d["statement_kinds_per_batch"].items():
            print(f"   {v:6.2f}  {k}")
        if d.get("profile"):
            print("-- own time by package --")
            for k, v in d["profile"]["by_package"]:
                print(f"   {v:5.1f}%  {k}")
            print("-- own time --")
            print(d["profile"]["tottime"])
            print("-- cumulative --")
            print(d["profile"]["cumulative"])
    if r.get("left_planned"):
        print(f"note: {r['left_planned']} messages left planned")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="orderbell-hotpath-"))
    fake: pl.Managed | None = None
    pg_name = None
    code = 0
    try:
        db_url = None
        db_label = f"SQLite {pl.sqlite3.sqlite_version}"
        if a.postgres:
            db_url, pg_name, version = pl.pg_create(a.postgres)
            db_label = f"PostgreSQL {version}"
        machine = pl.machine_info(db_label)
        account_sid = "AC" + secrets.token_hex(16)
        token = "bench-" + secrets.token_hex(12)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pl.REPO), env.get("PYTHONPATH")]))
        fake = pl.Managed(
            "fake-twilio",
            [
                pl.PY,
                "-m",
                "tests.fakes.serve",
                "twilio",
                "--host",
                pl.HOST,
                "--port",
                "0",
                "--print-port",
                "--option",
                f"account_sid={account_sid}",
                "--option",
                f"auth_token={token}",
            ],
            env,
            tmp / "fake.log",
            stdout_pipe=True,
        )
        line = fake.read_line(30)
        if not line.isdigit():
            raise RuntimeError(f"fake did not start:\n{fake.output()}")
        fake_base = f"http://{pl.HOST}:{line}"
        cfg = tmp / "bench.yaml"
        pl.write_config(cfg, account_sid, fake_base)
        cenv = {k: v for k, v in os.environ.items() if not k.startswith("ORDERBELL_")}
        cenv.update(
            ORDERBELL_DATA_DIR=str(tmp), ORDERBELL_LOG_LEVEL="warning", BENCH_TWILIO_TOKEN=token
        )
        if db_url:
            cenv["ORDERBELL_DATABASE_URL"] = db_url
        if a.src:
            cenv["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(a.src.resolve()), cenv.get("PYTHONPATH")])
            )
        pl.run_cli(cenv, "db", "upgrade", timeout=60)
        pl.run_cli(cenv, "apply", str(cfg), timeout=60)
        import logging

        logging.basicConfig(level=logging.WARNING)
        print(
            f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), Python "
            f"{machine['python']}; database: {db_label}; loop: "
            f"{'uvloop' if a.uvloop else 'asyncio'}"
        )
        print(f"command: {pl.shlex.join([pl.PY, *sys.argv])}")
        import orderbell

        prov = pl.provenance(a.src)
        if prov.get("src_commit"):
            print(
                f"code: commit {prov['src_commit']} (snapshot; repository HEAD is "
                f"{prov['commit']}); orderbell imported from {Path(orderbell.__file__).parent}"
            )
        else:
            print(
                f"code: commit {prov['commit']}, {prov['src_uncommitted_files']} uncommitted "
                f"files under src/; orderbell imported from {Path(orderbell.__file__).parent}"
            )
        result = pl.asyncio_run(
            run(
                a,
                tmp,
                db_url or f"sqlite+aiosqlite:///{tmp / 'orderbell.db'}",
                fake_base,
                token,
                account_sid,
            ),
            uvloop_ok=a.uvloop,
        )
        result["machine"] = machine
        print_report(result, a)
        if a.json:
            print(json.dumps(result, indent=2, default=str))
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        if fake is not None:
            fake.stop()
        pl.Managed.stop_all()
        if pg_name:
            with contextlib.suppress(Exception):
                pl.pg_drop(a.postgres, pg_name)
        if a.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
