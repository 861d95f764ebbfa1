#!/usr/bin/env python
"""End-to-end pipeline benchmark: signed webhooks in, SMS requests out, through real processes.

What it does, in one run:

1. starts its own fake Twilio as a separate process (``python -m tests.fakes.serve twilio``)
   on 127.0.0.1;
2. prepares a fresh data directory and database: a SQLite file (default) or, with
   ``--postgres URL``, a scratch database ``orderbell_bench_<random>`` created on that
   server and dropped at the end; writes a YAML config (one tenant, one location, a
   generic integration with a known ``whsec_`` secret, one ``twilio_sms`` channel whose
   ``base_url`` is the fake) and runs ``orderbell db upgrade`` and ``orderbell apply``;
3. starts Order Bell: ``orderbell serve`` (API + worker in one process) on SQLite;
   ``orderbell api`` (``--api N`` processes, each on its own port, requests spread
   round-robin) plus ``--workers K`` ``orderbell worker`` processes on PostgreSQL;
   waits for ``/readyz``;
4. sends ``--warmup`` webhooks and waits for their messages (not measured), then N
   signed generic webhooks (``-n``), either closed-loop at a concurrency (``-c``) or
   open-loop at a fixed rate (``--rate``: send i is scheduled at t0 + i/R whatever the
   answers, so the latency under that load is measured honestly). Each webhook creates a
   new order, status "confirmed", with a guest whose phone number is unique and valid
   (checked with ``phonenumbers``), preferring SMS: exactly one SMS per webhook;
5. waits until the fake has received all messages (``--timeout``), matches each provider
   request to its webhook by the To number, and prints: webhooks/s over the send window,
   messages/s end to end (first webhook accepted -> last provider request received), the
   p50/p95/p99/max of (provider request received - webhook accepted) in ms, duplicates
   and missing messages, and the CPU each process used per message;
6. stops Order Bell, then measures the CEILING: the same provider requests (the very form
   bodies the pipeline sent, Basic auth, same fake) sent straight to the fake by a bare
   aiohttp client, no database, at the same concurrency; prints requests/s and the ratio
   pipeline messages/s / ceiling requests/s;
7. prints the machine (nproc, CPU model, Python, database) and the exact command line;
   ``--json`` prints the figures as JSON too.

Every process it starts is stopped at the end, also on Ctrl-C, SIGTERM or an error;
every wait is bounded in count and in time. Only loopback addresses are used.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/pipeline.py                        # SQLite, 2000 at -c 32
    .venv/bin/python benchmarks/pipeline.py --postgres postgresql://postgres@127.0.0.1:5432/test \\
        --workers 2 -c 64                                           # throughput
    .venv/bin/python benchmarks/pipeline.py --postgres ... --workers 2 --rate 500 -n 10000  # latency

Profiling: ``--py-spy DIR`` samples every Order Bell process with py-spy during the send
window (``--py-spy-seconds``) and prints the functions that dominate (py-spy must be
installed: ``.venv/bin/pip install py-spy``). Profiling costs CPU on a small machine: take
figures from runs without it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import ipaddress
import json
import os
import platform
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import phonenumbers  # noqa: E402

from orderbell.sources.generic import sign  # noqa: E402

PY = sys.executable
CLI = [PY, "-m", "orderbell.cli"]
#: the same CLI, on uvloop (--orderbell-uvloop)
CLI_UVLOOP = [
    PY,
    "-c",
    "import asyncio, sys, uvloop; "
    "asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "sys.argv[0] = 'orderbell'; from orderbell.cli import main; main()",
]
HOST = "127.0.0.1"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"orderbell-pipeline-benchmark-secret").decode()
INTEGRATION = "bench-pos"
FROM_NUMBER = "+15017122661"
#: New York area codes, tried in this order for guest numbers (exchange 555 first)
AREA_CODES = ("212", "646", "332", "917", "718", "347", "929")


# ----------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/pipeline.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = p.add_argument_group("load")
    load.add_argument(
        "-n",
        "--count",
        type=int,
        default=2000,
        metavar="N",
        help="webhooks to send in the measured window (default 2000); each makes one SMS",
    )
    load.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=32,
        metavar="C",
        help="closed loop: webhooks in flight at once (default 32); also the "
        "concurrency of the ceiling measurement",
    )
    load.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="R",
        help="open loop instead: send R webhooks per second on a fixed schedule, "
        "whatever the answers (for latency under a given load)",
    )
    load.add_argument(
        "--max-connections",
        type=int,
        default=512,
        metavar="M",
        help="open loop: most connections the client opens (default 512)",
    )
    load.add_argument(
        "--warmup",
        type=int,
        default=200,
        metavar="W",
        help="webhooks sent (at -c) and delivered before the measured window, to "
        "fill pools and caches; not counted (default 200, 0 for none)",
    )
    load.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        metavar="S",
        help="seconds to wait for all messages after the last webhook (default 180)",
    )
    load.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds one webhook request may take before it counts as failed (default 30)",
    )
    load.add_argument(
        "--quiet",
        type=float,
        default=1.0,
        metavar="S",
        help="after the last expected message arrived, wait this long for duplicates (default 1.0)",
    )
    load.add_argument(
        "--no-uvloop",
        action="store_true",
        help="run this program's load generator and ceiling client on the default "
        "asyncio loop instead of uvloop",
    )

    ob = p.add_argument_group("Order Bell")
    ob.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="PostgreSQL admin URL on loopback, e.g. postgresql://postgres@127.0.0.1:5432/test; "
        "a scratch database orderbell_bench_<random> is created there and dropped "
        "at the end. Default: a SQLite file in a fresh data directory",
    )
    ob.add_argument(
        "--api",
        type=int,
        default=1,
        metavar="N",
        help="PostgreSQL: number of `orderbell api` processes (default 1)",
    )
    ob.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="PostgreSQL: number of `orderbell worker` processes (default 1)",
    )
    ob.add_argument(
        "--serve",
        action="store_true",
        help="PostgreSQL: run one `orderbell serve` (API + worker) instead of api + workers",
    )
    ob.add_argument(
        "--worker-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="sets ORDERBELL_CONCURRENCY (messages in flight per worker; built-in default 64)",
    )
    ob.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="sets ORDERBELL_BATCH_SIZE (messages claimed at once; built-in default 100)",
    )
    ob.add_argument(
        "--orderbell-uvloop",
        action="store_true",
        help="experiment: run the Order Bell processes on uvloop (an event loop policy set "
        "before the CLI starts; Order Bell itself is unchanged)",
    )
    ob.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every Order Bell process (repeatable)",
    )
    ob.add_argument(
        "--fake-latency",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds the fake Twilio waits before answering each request (default 0)",
    )
    ob.add_argument(
        "--src",
        type=Path,
        default=None,
        metavar="DIR",
        help="run Order Bell from this source directory (the one holding the orderbell "
        "package, e.g. a copy made with `git archive HEAD src | tar -x -C /tmp/snap`) "
        "instead of the installed package; for comparing versions",
    )
    ob.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="use this (new or empty) data directory instead of a temporary one",
    )
    ob.add_argument(
        "--keep",
        action="store_true",
        help="keep the data directory (config, SQLite file, process logs)",
    )
    ob.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="S",
        help="before starting, wait up to S seconds for the machine to be idle (under "
        "0.15 busy cores over a second), e.g. when others run tests on it",
    )
    ob.add_argument(
        "--start-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for a process to start or a CLI command to finish (default 60)",
    )

    out = p.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="also print the figures as one JSON object"
    )
    out.add_argument(
        "--json-out",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the JSON figures to FILE",
    )
    out.add_argument("--no-ceiling", action="store_true", help="skip the ceiling measurement")
    out.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample each Order Bell process with py-spy during the send window; "
        "raw stacks go to DIR, a summary of the top functions is printed",
    )
    out.add_argument(
        "--py-spy-seconds",
        type=float,
        default=5.0,
        metavar="S",
        help="how long py-spy samples (default 5)",
    )
    out.add_argument(
        "--py-spy-rate",
        type=int,
        default=100,
        metavar="HZ",
        help="py-spy samples per second (default 100)",
    )
    out.add_argument(
        "--top",
        type=int,
        default=18,
        metavar="K",
        help="functions shown per process in the py-spy summary (default 18)",
    )
    a = p.parse_args(argv)

    if a.count < 1 or a.concurrency < 1 or a.warmup < 0:
        p.error("-n and -c must be >= 1, --warmup >= 0")
    if a.rate is not None and a.rate <= 0:
        p.error("--rate must be > 0")
    if a.postgres is None and (a.api != 1 or a.workers != 1 or a.serve):
        p.error("--api, --workers and --serve apply to PostgreSQL; SQLite runs `orderbell serve`")
    if a.api < 1 or a.workers < 0:
        p.error("--api must be >= 1 and --workers >= 0")
    if a.postgres and not a.serve and a.workers == 0:
        p.error("--workers 0 would send nothing (use --serve for API + worker in one process)")
    if a.postgres:
        host = urlsplit(a.postgres).hostname or ""
        if not _is_loopback(host):
            p.error(f"--postgres must point at a loopback address, not {host!r}")
    if a.src is not None:
        a.src = a.src.resolve()
        if not (a.src / "orderbell" / "__init__.py").exists():
            p.error(f"--src {a.src} holds no orderbell package")
    for item in a.env:
        if "=" not in item:
            p.error(f"--env takes KEY=VALUE, not {item!r}")
    return a


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ----------------------------------------------------------------------------- machine


def machine_info(db_label: str) -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "nproc": nproc,
        "cpu_model": model,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "aiohttp": aiohttp.__version__,
        "database": db_label,
    }


def provenance(src: Path | None) -> dict[str, Any]:
    """Which code ran: the git commit, and how many files under src/ differ from it."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = [line for line in git("status", "--porcelain", "--", "src").splitlines() if line]
    out: dict[str, Any] = {
        "commit": commit,
        "src_uncommitted_files": len(dirty),
        "orderbell_from": str(src) if src else "the installed package (the working tree, editable)",
    }
    if src is not None:
        # a snapshot made with `git archive <commit> src` may say which commit in a COMMIT file
        for marker in (src / "COMMIT", src.parent / "COMMIT"):
            if marker.exists():
                out["src_commit"] = marker.read_text().strip()
                break
    return out


def cpu_ticks_total() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    v = cpu_ticks()
    if not v:
        return 0, 0
    total = sum(v.values())
    return total - v["idle"] - v["iowait"], total


def cpu_ticks() -> dict[str, int]:
    """The machine's jiffies by kind (user, system, softirq, steal, ...), from /proc/stat."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return {}
    return dict(zip(names, (int(x) for x in fields[:8]), strict=False))


def background_busy(seconds: float = 1.0) -> float:
    """Cores busy on the machine over ``seconds`` (others' work, before we start ours)."""
    b0, t0 = cpu_ticks_total()
    time.sleep(seconds)
    b1, t1 = cpu_ticks_total()
    if t1 <= t0:
        return 0.0
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return n * (b1 - b0) / (t1 - t0)


def process_cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of one process (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    parts = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / ticks


def postgres_cpu_seconds() -> dict[int, float]:
    """CPU seconds of every process named ``postgres`` on this machine (the local server:
    backends, WAL writer, ...), by pid. Backends of other clients are included."""
    out: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        head, _, rest = stat.rpartition(")")
        if not head.endswith("(postgres"):
            continue
        parts = rest.split()
        out[int(entry.name)] = (int(parts[11]) + int(parts[12])) / ticks
    return out


def all_cpu_seconds() -> dict[int, tuple[str, float]]:
    """pid -> (command name, CPU seconds) for every process on the machine."""
    out: dict[int, tuple[str, float]] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        head, _, rest = stat.rpartition(")")
        parts = rest.split()
        try:
            out[int(entry.name)] = (
                head.split("(", 1)[1],
                (int(parts[11]) + int(parts[12])) / ticks,
            )
        except (IndexError, ValueError):
            continue
    return out


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# ----------------------------------------------------------------------------- processes


class Managed:
    """A child process we started: output to a log file, stopped by its pid only."""

    all: list[Managed] = []

    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        log: Path,
        *,
        stdout_pipe: bool = False,
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log,
            text=True,
            start_new_session=True,  # a Ctrl-C reaches us; we stop children in order
        )
        Managed.all.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            return self.log_path.read_text()[-4000:]
        return ""

    def read_line(self, timeout: float) -> str:
        """The first line on stdout, waiting at most ``timeout`` seconds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buf = ""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline and "\n" not in buf:
            ready, _, _ = select.select(
                [fd], [], [], max(0.0, min(0.2, deadline - time.monotonic()))
            )
            if ready:
                chunk = os.read(fd, 4096).decode()
                if not chunk:
                    break
                buf += chunk
            elif not self.alive():
                break
        return buf.split("\n", 1)[0].strip()

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            with contextlib.suppress(OSError):
                self.proc.stdout.close()
        with contextlib.suppress(OSError):
            self._log.close()
        if self in Managed.all:
            Managed.all.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for proc in reversed(list(cls.all)):
            with contextlib.suppress(Exception):
                proc.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_json(method: str, url: str, payload: Any = None, timeout: float = 30.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_ready(proc: Managed, base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.output()}")
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            if http_json("GET", f"{base}/readyz", timeout=2).get("status") == "ready":
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready after {timeout:g} s:\n{proc.output()}")


def wait_log_line(proc: Managed, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in proc.output():
            return
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.output()}")
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not say {needle!r} in {timeout:g} s:\n{proc.output()}")


def run_cli(env: dict[str, str], *args: str, timeout: float) -> str:
    proc = subprocess.run(
        [*CLI, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"orderbell {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


# ----------------------------------------------------------------------------- PostgreSQL


async def _pg_exec(dsn: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=15)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _plain_pg(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def pg_create(admin: str) -> tuple[str, str, str]:
    """Create a scratch database; returns (its URL, its name, the server version)."""
    from sqlalchemy.engine import make_url

    name = f"orderbell_bench_{secrets.token_hex(5)}"
    dsn = _plain_pg(admin)
    version = asyncio.run(_pg_exec(dsn, "SHOW server_version"))
    asyncio.run(_pg_exec(dsn, f'CREATE DATABASE "{name}"'))
    url = make_url(dsn).set(database=name).render_as_string(hide_password=False)
    return url, name, str(version)


def pg_drop(admin: str, name: str) -> None:
    asyncio.run(_pg_exec(_plain_pg(admin), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ----------------------------------------------------------------------------- workload


def guest_numbers(count: int) -> list[tuple[str, str]]:
    """``count`` distinct valid US numbers: (as a guest would type it, E.164)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    exchanges = ["555"] + [f"{x:03d}" for x in range(201, 1000) if x != 555 and x % 100 != 11]
    for exchange in exchanges:
        for area in AREA_CODES:
            for line in range(10000):
                typed = f"+1 {area} {exchange} {line:04d}"
                number = phonenumbers.parse(typed, None)
                if not phonenumbers.is_valid_number(number):
                    break  # this area/exchange pair is not assignable; try the next
                e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                if e164 in seen:
                    continue
                seen.add(e164)
                out.append((typed, e164))
                if len(out) == count:
                    return out
    raise RuntimeError(f"could not make {count} distinct valid numbers")


def webhook_body(order_id: str, number: str, phone: str, name: str) -> bytes:
    payload = {
        "type": "order.updated",
        "data": {
            "order_id": order_id,
            "number": number,
            "status": "confirmed",
            "fulfillment": "pickup",
            "guest": {"name": name, "phone": phone, "preferences": ["sms"]},
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def write_config(path: Path, account_sid: str, fake_base: str) -> None:
    """One tenant, one location, the generic integration, one twilio_sms channel -> the fake.
    The auth token comes from ${BENCH_TWILIO_TOKEN} (stored sealed by `orderbell apply`)."""
    path.write_text(f"""version: 1
tenants:
  - slug: bench
    name: Benchmark Bistro
    locations:
      - slug: downtown
        name: Bistro Downtown
        timezone: America/New_York
        locale: en
        currency: USD
        phone: "+12125550100"
        address: "1 Main St, New York, NY"
    integrations:
      - id: {INTEGRATION}
        source: generic
        location: downtown
        secret: {WEBHOOK_SECRET}
    channels:
      - name: sms
        provider: twilio_sms
        settings:
          account_sid: {account_sid}
          auth_token: ${{BENCH_TWILIO_TOKEN}}
          from_number: "{FROM_NUMBER}"
          base_url: {fake_base}
""")


@dataclass
class Webhook:
    index: int
    body: bytes
    e164: str
    url: str
    scheduled: float = 0.0  # time.time() the send was due (open loop) or started
    started: float = 0.0
    accepted: float | None = None  # time.time() the 2xx answer came back
    status: int | None = None
    error: str | None = None


@dataclass
class SendReport:
    started: float
    ended: float
    max_in_flight: int = 0
    scheduler_lag_max: float = 0.0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)


async def send_webhooks(
    hooks: list[Webhook],
    *,
    concurrency: int,
    rate: float | None,
    max_connections: int,
    request_timeout: float,
) -> SendReport:
    """Send every webhook, closed loop (``concurrency`` in flight) or open loop (``rate``/s)."""
    limit = concurrency if rate is None else max_connections
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, force_close=False)
    timeout = aiohttp.ClientTimeout(total=request_timeout)
    in_flight = 0
    report = SendReport(started=time.time(), ended=0.0)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(h: Webhook) -> None:
            nonlocal in_flight
            in_flight += 1
            report.max_in_flight = max(report.max_in_flight, in_flight)
            h.started = time.time()
            headers = sign(
                WEBHOOK_SECRET, f"msg_{h.index:08d}_{secrets.token_hex(4)}", int(h.started), h.body
            )
            try:
                async with session.post(h.url, data=h.body, headers=headers) as resp:
                    await resp.read()
                    h.status = resp.status
                    if 200 <= resp.status < 300:
                        h.accepted = time.time()
                report.statuses[str(h.status)] += 1
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                h.error = type(exc).__name__
                report.statuses[h.error] += 1
            finally:
                in_flight -= 1

        if rate is None:
            it = iter(hooks)

            async def lane() -> None:
                for h in it:  # shared iterator: each webhook is taken by one lane
                    h.scheduled = time.time()
                    await one(h)

            report.started = time.time()
            await asyncio.gather(*(lane() for _ in range(min(concurrency, len(hooks)))))
        else:
            interval = 1.0 / rate
            tasks: list[asyncio.Task[None]] = []
            loop = asyncio.get_running_loop()
            t0_mono = loop.time() + 0.05
            t0_wall = time.time() + 0.05
            report.started = t0_wall
            for i, h in enumerate(hooks):
                due = t0_mono + i * interval
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    report.scheduler_lag_max = max(report.scheduler_lag_max, -delay)
                h.scheduled = t0_wall + i * interval
                tasks.append(asyncio.create_task(one(h)))
            await asyncio.gather(*tasks)
    report.ended = time.time()
    return report


async def wait_for_fake(fake_base: str, target: int, timeout: float) -> int:  # noqa: ASYNC109
    """Poll the fake's request count until it reaches ``target``; returns the last count."""
    deadline = time.monotonic() + timeout
    count = 0
    timeout_cfg = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout_cfg) as session:
        while time.monotonic() < deadline:
            async with session.get(f"{fake_base}/_fake/stats") as resp:
                count = int((await resp.json())["count"])
            if count >= target:
                return count
            await asyncio.sleep(0.05)
    return count


# ----------------------------------------------------------------------------- diagnostics

_BATCH_SQL = "SELECT count(*) FROM message_log WHERE event = 'sent' GROUP BY at"


async def _pg_fetch(dsn: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=15)
    try:
        return [r[0] for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def finish_batches(sqlite_file: Path | None, pg_url: str | None) -> dict[str, Any]:
    """How many messages each worker batch finished: the 'sent' history rows of one batch
    share their timestamp (``queue.finish`` writes them with one ``now``)."""
    try:
        if pg_url:
            sizes = asyncio.run(_pg_fetch(_plain_pg(pg_url), _BATCH_SQL))
        elif sqlite_file is not None and sqlite_file.exists():
            with contextlib.closing(sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True)) as c:
                sizes = [r[0] for r in c.execute(_BATCH_SQL)]
        else:
            return {}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    sizes = sorted(int(x) for x in sizes)
    if not sizes:
        return {"batches": 0}
    return {
        "batches": len(sizes),
        "messages": sum(sizes),
        "mean": sum(sizes) / len(sizes),
        "p50": percentile(sizes, 50),
        "p90": percentile(sizes, 90),
        "max": sizes[-1],
    }


# ----------------------------------------------------------------------------- ceiling


async def ceiling(
    fake_base: str, requests: list[dict[str, Any]], concurrency: int, request_timeout: float
) -> dict[str, Any]:
    """The recorded provider requests again, straight from a bare aiohttp client."""
    prepared = []
    for r in requests:
        fields = r.get("fields") or {}
        body = urlencode(list(fields.items())).encode()
        hdrs = r.get("headers") or {}
        headers = {
            "Authorization": hdrs.get("authorization", ""),
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": hdrs.get("user-agent", "bench"),
        }
        prepared.append((fake_base + r["path"], body, headers))
    statuses: collections.Counter[str] = collections.Counter()
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=request_timeout)
    ) as s:
        it = iter(prepared)

        async def lane() -> None:
            for url, body, headers in it:
                try:
                    async with s.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        statuses[str(resp.status)] += 1
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    statuses[type(exc).__name__] += 1

        cpu0 = own_cpu_seconds()
        t0 = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(min(concurrency, len(prepared)))))
        elapsed = time.perf_counter() - t0
        cpu1 = own_cpu_seconds()
    ok = sum(v for k, v in statuses.items() if k.isdigit() and 200 <= int(k) < 300)
    return {
        "requests": len(prepared),
        "ok": ok,
        "statuses": dict(statuses),
        "seconds": elapsed,
        "requests_per_s": len(prepared) / elapsed if elapsed > 0 else None,
        "concurrency": concurrency,
        "client_cpu_s": cpu1 - cpu0,
    }


# ----------------------------------------------------------------------------- py-spy


def start_py_spy(
    procs: list[Managed], out_dir: Path, seconds: float, rate: int
) -> list[tuple[Managed, subprocess.Popen[str], Path]]:
    exe = shutil.which("py-spy") or str(Path(PY).with_name("py-spy"))
    if not Path(exe).exists():
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for p in procs:
        raw = out_dir / f"{p.name}.txt"
        cmd = [
            exe,
            "record",
            "--pid",
            str(p.pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw),
        ]
        spy = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append((p, spy, raw))
    return started


def finish_py_spy(spies: list[tuple[Managed, subprocess.Popen[str], Path]], timeout: float) -> None:
    for _, spy, _ in spies:
        try:
            spy.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            spy.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=10)
            if spy.poll() is None:
                spy.kill()
                spy.wait(timeout=5)


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


#: leaf functions where a thread waits (py-spy --nonblocking counts some of them as active)
_WAITING = {
    "EpollSelector.select",
    "Condition.wait",
    "Event.wait",
    "Lock.acquire",
    "Queue.get",
    "_wait_for_tstate_lock",
    "select",
    "poll",
}
_STDLIB = set(getattr(sys, "stdlib_module_names", ())) | {"<frozen runpy>"}


def _package(frame: str) -> str:
    """The top-level package of a frame's file, e.g. sqlalchemy, orderbell, stdlib."""
    m = _FRAME.match(frame.strip())
    if not m:
        return "?"
    path = m.group("file")
    for marker in ("site-packages/", "/src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    top = path.split("/", 1)[0]
    name = top[:-3] if top.endswith(".py") else top
    if name in _STDLIB or path.startswith("<frozen"):
        return "stdlib"
    if path.startswith("<sqlalchemy generated"):
        return "sqlalchemy"
    return name or "?"


def _frame_key(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def summarise_py_spy(raw: Path, top: int) -> dict[str, Any]:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks."""
    self_c: collections.Counter[str] = collections.Counter()
    incl_c: collections.Counter[str] = collections.Counter()
    module_c: collections.Counter[str] = collections.Counter()
    owner_c: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        lines = raw.read_text().splitlines()
    except OSError:
        return {
            "samples": 0,
            "self": [],
            "inclusive": [],
            "by_package": [],
            "by_orderbell_caller": [],
        }
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [
            f
            for f in stack.split(";")
            if f and not f.startswith("process ") and not f.startswith("thread ")
        ]
        if not frames:
            continue
        total += n
        keys = [_frame_key(f) for f in frames]
        self_c[keys[-1]] += n
        for k in set(keys):
            incl_c[k] += n
        pkg = _package(frames[-1])
        if keys[-1].split(" ", 1)[0] in _WAITING:
            pkg = "(waiting: " + keys[-1].split(" ", 1)[0] + ")"
        module_c[pkg] += n
        ours = [k for f, k in zip(frames, keys, strict=True) if _package(f) == "orderbell"]
        owner_c[ours[-1] if ours else "(no orderbell frame)"] += n

    def pct(c: collections.Counter[str]) -> list[tuple[str, int, float]]:
        return [(k, v, 100.0 * v / total if total else 0.0) for k, v in c.most_common(top)]

    return {
        "samples": total,
        "self": pct(self_c),
        "inclusive": pct(incl_c),
        "by_package": pct(module_c),
        "by_orderbell_caller": pct(owner_c),
    }


# ----------------------------------------------------------------------------- figures


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def dist(values_ms: list[float]) -> dict[str, float | None]:
    v = sorted(values_ms)
    return {
        "min": v[0] if v else None,
        "p50": percentile(v, 50),
        "p95": percentile(v, 95),
        "p99": percentile(v, 99),
        "max": v[-1] if v else None,
        "mean": sum(v) / len(v) if v else None,
    }


def fmt_ms(d: dict[str, float | None]) -> str:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    return (
        f"p50 {f(d['p50'])}  p95 {f(d['p95'])}  p99 {f(d['p99'])}  max {f(d['max'])}  "
        f"(min {f(d['min'])}, mean {f(d['mean'])}) ms"
    )


# ----------------------------------------------------------------------------- the run


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp_dir: Path | None = None
        self.pg_name: str | None = None
        self.fake: Managed | None = None
        self.fake_base = ""
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = "bench-" + secrets.token_hex(12)
        self.apis: list[tuple[Managed, str]] = []
        self.workers: list[Managed] = []
        self.result: dict[str, Any] = {}

    # -- set-up -----------------------------------------------------------------------

    def data_dir(self) -> Path:
        if self.args.data_dir is not None:
            d = self.args.data_dir.resolve()
            d.mkdir(parents=True, exist_ok=True)
            if any(d.iterdir()):
                raise RuntimeError(f"--data-dir {d} is not empty")
            return d
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="orderbell-bench-"))
        return self.tmp_dir

    def start_fake(self, data: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        cmd = [
            PY,
            "-m",
            "tests.fakes.serve",
            "twilio",
            "--host",
            HOST,
            "--port",
            "0",
            "--print-port",
            "--option",
            f"account_sid={self.account_sid}",
            "--option",
            f"auth_token={self.auth_token}",
        ]
        if self.args.fake_latency:
            cmd += ["--latency", str(self.args.fake_latency)]
        self.fake = Managed("fake-twilio", cmd, env, data / "fake-twilio.log", stdout_pipe=True)
        line = self.fake.read_line(self.args.start_timeout)
        if not line.isdigit():
            raise RuntimeError(f"the fake did not report its port:\n{self.fake.output()}")
        self.fake_base = f"http://{HOST}:{int(line)}"

    def write_config(self, path: Path) -> None:
        write_config(path, self.account_sid, self.fake_base)

    def env(self, data: Path, db_url: str | None, public_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERBELL_")}
        env["ORDERBELL_DATA_DIR"] = str(data)
        if db_url:
            env["ORDERBELL_DATABASE_URL"] = db_url
        env["ORDERBELL_LOG_LEVEL"] = "warning"
        env["ORDERBELL_PUBLIC_URL"] = public_url
        env["ORDERBELL_HOST"] = HOST
        env["BENCH_TWILIO_TOKEN"] = self.auth_token
        if self.args.src is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(self.args.src), env.get("PYTHONPATH")])
            )
        if self.args.worker_concurrency:
            env["ORDERBELL_CONCURRENCY"] = str(self.args.worker_concurrency)
        if self.args.batch_size:
            env["ORDERBELL_BATCH_SIZE"] = str(self.args.batch_size)
        for item in self.args.env:
            key, value = item.split("=", 1)
            env[key] = value
        return env

    def start_orderbell(self, data: Path, env: dict[str, str], ports: list[int]) -> None:
        a = self.args
        CLI = CLI_UVLOOP if a.orderbell_uvloop else globals()["CLI"]
        if a.postgres is None or a.serve:
            p = Managed(
                "serve",
                [*CLI, "serve", "--host", HOST, "--port", str(ports[0])],
                env,
                data / "serve.log",
            )
            self.apis.append((p, f"http://{HOST}:{ports[0]}"))
        else:
            for i, port in enumerate(ports):
                p = Managed(
                    f"api{i + 1}",
                    [*CLI, "api", "--host", HOST, "--port", str(port)],
                    env,
                    data / f"api{i + 1}.log",
                )
                self.apis.append((p, f"http://{HOST}:{port}"))
            for i in range(a.workers):
                self.workers.append(
                    Managed(f"worker{i + 1}", [*CLI, "worker"], env, data / f"worker{i + 1}.log")
                )
        for p, base in self.apis:
            wait_ready(p, base, a.start_timeout)
        for w in self.workers:
            wait_log_line(w, "started", a.start_timeout)

    # -- the measurement --------------------------------------------------------------

    def main(self) -> dict[str, Any]:
        a = self.args
        background = background_busy(1.0)
        waited_until = time.monotonic() + a.wait_idle
        while background > 0.15 and time.monotonic() < waited_until:
            background = background_busy(1.0)
        data = self.data_dir()
        self.data = data
        db_label = f"SQLite {sqlite3.sqlite_version} (file, WAL)"
        db_url: str | None = None
        if a.postgres:
            db_url, self.pg_name, version = pg_create(a.postgres)
            db_label = f"PostgreSQL {version} (scratch database {self.pg_name})"
        machine = machine_info(db_label)
        machine["background_busy_cores"] = background
        self.result["code"] = provenance(a.src)
        self.result["machine"] = machine
        self.db_url = db_url
        self.result["command"] = shlex.join([PY, *sys.argv])
        n_api = 1 if (a.postgres is None or a.serve) else a.api
        mode = (
            "serve (API + worker, one process)"
            if n_api == 1 and not self.workers and (a.postgres is None or a.serve)
            else f"{n_api} api + {a.workers} worker processes"
        )
        self.start_fake(data)
        config = data / "bench.yaml"
        self.write_config(config)
        ports = [free_port() for _ in range(n_api)]
        env = self.env(data, db_url, f"http://{HOST}:{ports[0]}")
        run_cli(env, "db", "upgrade", timeout=a.start_timeout)
        run_cli(env, "apply", str(config), timeout=a.start_timeout)
        self.start_orderbell(data, env, ports)
        if a.postgres and not a.serve:
            mode = f"{len(self.apis)} api + {len(self.workers)} worker processes"
        self.result["setup"] = {
            "mode": mode,
            "load": (
                f"open loop, {a.rate:g} webhooks/s"
                if a.rate
                else f"closed loop, concurrency {a.concurrency}"
            ),
            "count": a.count,
            "warmup": a.warmup,
            "orderbell_env": {
                k: v
                for k, v in env.items()
                if k.startswith("ORDERBELL_")
                and k not in ("ORDERBELL_DATA_DIR", "ORDERBELL_DATABASE_URL")
            },
            "fake_latency_s": a.fake_latency,
            "client_loop": "asyncio" if a.no_uvloop else "uvloop",
            "orderbell_loop": "uvloop (--orderbell-uvloop)"
            if a.orderbell_uvloop
            else "asyncio (as shipped)",
        }
        self.print_header()

        numbers = guest_numbers(a.warmup + a.count)
        run_id = secrets.token_hex(3)
        bases = [base for _, base in self.apis]

        def make(i: int, prefix: str, number: tuple[str, str]) -> Webhook:
            url = f"{bases[i % len(bases)]}/v1/webhooks/generic/{INTEGRATION}"
            body = webhook_body(
                f"{prefix}-{run_id}-{i}", f"{prefix[0].upper()}{i}", number[0], f"Guest {i}"
            )
            return Webhook(i, body, number[1], url)

        warm = [make(i, "warm", numbers[i]) for i in range(a.warmup)]
        hooks = [make(i, "order", numbers[a.warmup + i]) for i in range(a.count)]
        return asyncio_run(self.measure(warm, hooks), uvloop_ok=not a.no_uvloop)

    async def measure(self, warm: list[Webhook], hooks: list[Webhook]) -> dict[str, Any]:
        a = self.args
        offset = 0
        if warm:
            rep = await send_webhooks(
                warm,
                concurrency=a.concurrency,
                rate=None,
                max_connections=a.max_connections,
                request_timeout=a.request_timeout,
            )
            ok = sum(1 for h in warm if h.accepted)
            got = await wait_for_fake(self.fake_base, ok, a.timeout)
            await asyncio.sleep(0.3)
            offset = int(http_json("GET", f"{self.fake_base}/_fake/stats")["count"])
            print(
                f"warm-up: {ok}/{len(warm)} webhooks accepted, {got} messages arrived "
                f"({dict(rep.statuses)})",
                flush=True,
            )

        procs = [p for p, _ in self.apis] + self.workers
        cpu_before = {p.name: process_cpu_seconds(p.pid) for p in [*procs, self.fake]}
        own_before = own_cpu_seconds()
        pg_before = postgres_cpu_seconds() if a.postgres else {}
        every_before = all_cpu_seconds()
        ticks0 = cpu_ticks()
        busy0, total0 = cpu_ticks_total()

        spies = []
        if a.py_spy is not None:
            spies = start_py_spy(procs, a.py_spy, a.py_spy_seconds, a.py_spy_rate)

        send = await send_webhooks(
            hooks,
            concurrency=a.concurrency,
            rate=a.rate,
            max_connections=a.max_connections,
            request_timeout=a.request_timeout,
        )
        accepted = [h for h in hooks if h.accepted is not None]
        print(
            f"sent {len(hooks)} webhooks in {send.ended - send.started:.2f} s: "
            f"{dict(send.statuses)}; waiting for {len(accepted)} messages...",
            flush=True,
        )
        count = await wait_for_fake(self.fake_base, offset + len(accepted), a.timeout)
        all_in = time.time()
        busy1, total1 = cpu_ticks_total()
        own_after = own_cpu_seconds()
        pg_after = postgres_cpu_seconds() if a.postgres else {}
        every_after = all_cpu_seconds()
        ticks1 = cpu_ticks()
        cpu_after = {p.name: process_cpu_seconds(p.pid) for p in [*procs, self.fake]}
        await asyncio.sleep(a.quiet)
        if spies:
            await asyncio.to_thread(finish_py_spy, spies, a.py_spy_seconds + 30)
        recorded = await asyncio.to_thread(
            http_json, "GET", f"{self.fake_base}/_fake/requests?since={offset}", None, 120
        )
        final_count = offset + len(recorded)

        figures = self.figures(hooks, accepted, recorded, send, count, offset)
        window = max(1e-9, all_in - send.started)
        cpu: dict[str, Any] = {"window_s": window}
        per_msg = max(1, figures["matched"])
        for name, before in cpu_before.items():
            after = cpu_after.get(name)
            if before is not None and after is not None:
                cpu[name] = {
                    "cpu_s": after - before,
                    "cores": (after - before) / window,
                    "ms_per_message": 1000 * (after - before) / per_msg,
                }
        cpu["loadgen"] = {
            "cpu_s": own_after - own_before,
            "cores": (own_after - own_before) / window,
            "ms_per_message": 1000 * (own_after - own_before) / per_msg,
        }
        if a.postgres:
            pg_s = sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items())
            cpu["postgres"] = {
                "cpu_s": pg_s,
                "cores": pg_s / window,
                "ms_per_message": 1000 * pg_s / per_msg,
            }
        if total1 > total0:
            ncpu = self.result["machine"]["nproc"] or 1
            busy_cores = ncpu * (busy1 - busy0) / (total1 - total0)
            ours = sum(v["cores"] for v in cpu.values() if isinstance(v, dict) and "cores" in v)
            cpu["machine_busy_cores"] = busy_cores
            cpu["other_cores"] = max(0.0, busy_cores - ours)  # kernel, other users' work
            span = sum(ticks1.values()) - sum(ticks0.values())
            if span > 0:
                cpu["machine_cores_by_kind"] = {
                    k: ncpu * (ticks1[k] - ticks0.get(k, 0)) / span
                    for k in ticks1
                    if k not in ("idle",)
                }
        mine = {p.pid for p in [*procs, self.fake]} | {os.getpid()} | set(pg_after)
        others = collections.Counter()
        for pid, (comm, after) in every_after.items():
            if pid in mine:
                continue
            before = every_before.get(pid, (comm, 0.0))[1]
            if after - before > 0:
                others[f"{comm}[{pid}]"] += after - before
        cpu["other_processes"] = [
            (k, v / window) for k, v in others.most_common(4) if v / window >= 0.02
        ]
        figures["cpu"] = cpu
        figures["fake_count_after_quiet"] = final_count - offset
        self.result["pipeline"] = figures

        if spies:
            self.result["py_spy"] = {
                p.name: {
                    **summarise_py_spy(raw, a.top),
                    "raw": str(raw),
                    "py_spy_stderr": (spy.stderr.read()[-500:] if spy.stderr else ""),
                }
                for p, spy, raw in spies
            }

        # Order Bell off, then the ceiling on a quiet machine.
        for p in procs:
            p.stop()
        figures["worker_batches"] = await asyncio.to_thread(
            finish_batches, self.data / "orderbell.db", self.db_url
        )
        if not a.no_ceiling and recorded:
            await asyncio.to_thread(http_json, "POST", f"{self.fake_base}/_fake/reset", {})
            ok_requests = [r for r in recorded if r.get("status") and 200 <= r["status"] < 300]
            ceil = await ceiling(
                self.fake_base, ok_requests or recorded, a.concurrency, a.request_timeout
            )
            self.result["ceiling"] = ceil
            if ceil.get("requests_per_s") and figures.get("messages_per_s"):
                self.result["ratio"] = figures["messages_per_s"] / ceil["requests_per_s"]
        return self.result

    def figures(
        self,
        hooks: list[Webhook],
        accepted: list[Webhook],
        recorded: list[dict[str, Any]],
        send: SendReport,
        count: int,
        offset: int,
    ) -> dict[str, Any]:
        by_number = {h.e164: h for h in hooks}
        arrivals: dict[str, list[float]] = collections.defaultdict(list)
        unknown = 0
        non_2xx = 0
        for r in recorded:
            to = (r.get("fields") or {}).get("To")
            if to in by_number:
                arrivals[to].append(float(r["received_at"]))
            else:
                unknown += 1
            if not (r.get("status") and 200 <= r["status"] < 300):
                non_2xx += 1
        latencies, first_arrivals = [], []
        duplicates = 0
        for h in accepted:
            got = arrivals.get(h.e164)
            if not got:
                continue
            duplicates += len(got) - 1
            first = min(got)
            first_arrivals.append(first)
            assert h.accepted is not None
            latencies.append(1000.0 * (first - h.accepted))
        missing = len(accepted) - len(first_arrivals)
        for h in hooks:  # messages for webhooks that failed (e.g. timed out after commit)
            if h.accepted is None and h.e164 in arrivals:
                duplicates += len(arrivals[h.e164]) - 1
        fig: dict[str, Any] = {
            "webhooks_sent": len(hooks),
            "webhooks_accepted": len(accepted),
            "webhook_statuses": dict(send.statuses),
            "provider_requests": len(recorded),
            "matched": len(first_arrivals),
            "missing": missing,
            "duplicates": duplicates,
            "unexpected": unknown,
            "provider_non_2xx": non_2xx,
            "timed_out": count < offset + len(accepted),
        }
        if accepted:
            first_sent = send.started
            last_acc = max(h.accepted for h in accepted if h.accepted)
            first_acc = min(h.accepted for h in accepted if h.accepted)
            fig["send_window_s"] = last_acc - first_sent
            fig["webhooks_per_s"] = len(accepted) / max(1e-9, last_acc - first_sent)
            resp = [
                1000.0 * (h.accepted - (h.scheduled or h.started)) for h in accepted if h.accepted
            ]
            fig["webhook_response_ms"] = dist(resp)
            fig["max_webhooks_in_flight"] = send.max_in_flight
            if self.args.rate:
                fig["scheduler_lag_max_ms"] = 1000 * send.scheduler_lag_max
            if first_arrivals:
                last_arr = max(first_arrivals)
                fig["e2e_window_s"] = last_arr - first_acc
                fig["messages_per_s"] = len(first_arrivals) / max(1e-9, last_arr - first_acc)
                fig["drain_after_last_webhook_s"] = last_arr - last_acc
                fig["latency_ms"] = dist(latencies)
        return fig

    # -- output -----------------------------------------------------------------------

    def print_header(self) -> None:
        m = self.result["machine"]
        s = self.result["setup"]
        print(
            f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory']}, Linux {m['kernel']}, "
            f"Python {m['python']}, aiohttp {m['aiohttp']}"
        )
        print(f"database: {m['database']}")
        print(
            f"background load before the run: {m['background_busy_cores']:.2f} cores busy"
            + (
                "  ** the machine is not idle: figures are pessimistic **"
                if m["background_busy_cores"] > 0.15
                else ""
            )
        )
        print(f"command: {self.result['command']}")
        code = self.result.get("code", {})
        if code.get("src_commit"):
            print(
                f"code: Order Bell from {code['orderbell_from']} = commit {code['src_commit']} "
                f"(repository HEAD is {code.get('commit')})"
            )
        else:
            print(
                f"code: commit {code.get('commit')}, {code.get('src_uncommitted_files')} "
                f"uncommitted files under src/; Order Bell from {code.get('orderbell_from')}"
            )
        print(f"Order Bell: {s['mode']}; env {s['orderbell_env']}")
        print(
            f"load: {s['load']}, {s['count']} webhooks after {s['warmup']} warm-up; "
            f"fake Twilio {self.fake_base} (latency {s['fake_latency_s']:g} s); "
            f"client loop {s['client_loop']}; Order Bell loop {s['orderbell_loop']}",
            flush=True,
        )

    def print_report(self) -> None:
        r = self.result
        f = r.get("pipeline", {})
        print()
        print("== pipeline ==")
        print(
            f"webhooks: {f.get('webhooks_accepted')}/{f.get('webhooks_sent')} accepted "
            f"{f.get('webhook_statuses')}; {f.get('webhooks_per_s', 0):.0f} webhooks/s over "
            f"{f.get('send_window_s', 0):.2f} s (max {f.get('max_webhooks_in_flight')} in flight)"
        )
        if "webhook_response_ms" in f:
            print(
                f"webhook response (sent or scheduled -> 2xx): {fmt_ms(f['webhook_response_ms'])}"
            )
        if "scheduler_lag_max_ms" in f:
            print(
                f"open-loop scheduler: worst lag behind schedule {f['scheduler_lag_max_ms']:.1f} ms"
            )
        print(
            f"messages: {f.get('matched')} matched, {f.get('missing')} missing, "
            f"{f.get('duplicates')} duplicates, {f.get('unexpected')} unexpected, "
            f"{f.get('provider_non_2xx')} answered non-2xx"
            + ("  ** TIMED OUT waiting **" if f.get("timed_out") else "")
        )
        if "messages_per_s" in f:
            print(
                f"end to end: {f['messages_per_s']:.0f} messages/s (first accepted -> last "
                f"provider request, {f['e2e_window_s']:.2f} s; last message "
                f"{f['drain_after_last_webhook_s'] * 1000:.0f} ms after the last webhook)"
            )
            print(
                f"latency (provider request received - webhook accepted): {fmt_ms(f['latency_ms'])}"
            )
        b = f.get("worker_batches") or {}
        if b.get("batches"):
            print(
                f"worker batches (messages finished together, whole run): {b['batches']} batches, "
                f"mean {b['mean']:.1f}, p50 {b['p50']:.0f}, p90 {b['p90']:.0f}, max {b['max']}"
            )
        cpu = f.get("cpu", {})
        if cpu:
            parts = [
                f"{k} {v['cores']:.2f} ({v['ms_per_message']:.2f} ms/msg)"
                for k, v in cpu.items()
                if isinstance(v, dict) and "cores" in v
            ]
            print(f"CPU cores used over {cpu['window_s']:.2f} s: " + ", ".join(parts))
            if "machine_busy_cores" in cpu:
                print(
                    f"  machine busy {cpu['machine_busy_cores']:.2f} of "
                    f"{r['machine']['nproc']} cores; other (kernel, other work on the machine incl. "
                    "processes that exited during the run): "
                    f"{cpu['other_cores']:.2f}"
                    + (
                        "; machine by kind: "
                        + ", ".join(
                            f"{k} {v:.2f}"
                            for k, v in cpu.get("machine_cores_by_kind", {}).items()
                            if v >= 0.01
                        )
                        if cpu.get("machine_cores_by_kind")
                        else ""
                    )
                    + (
                        " ("
                        + ", ".join(f"{k} {v:.2f}" for k, v in cpu.get("other_processes", []))
                        + ")"
                        if cpu.get("other_processes")
                        else ""
                    )
                )
        c = r.get("ceiling")
        if c:
            print()
            print("== ceiling: the same requests, bare aiohttp -> fake, no database ==")
            print(
                f"{c['requests_per_s']:.0f} requests/s ({c['ok']}/{c['requests']} ok, "
                f"{c['seconds']:.2f} s, concurrency {c['concurrency']}, client CPU "
                f"{c['client_cpu_s']:.2f} s)"
            )
            if "ratio" in r:
                print(f"ratio pipeline / ceiling: {r['ratio']:.3f}")
        spy = r.get("py_spy")
        if spy:
            print()
            print(
                f"== py-spy ({self.args.py_spy_seconds:g} s at {self.args.py_spy_rate} Hz, "
                "active samples only) =="
            )
            for name, s in spy.items():
                print(f"-- {name}: {s['samples']} samples; raw stacks {s['raw']}")
                print(
                    "   by package of the leaf frame: "
                    + ", ".join(f"{k} {p:.0f}%" for k, _, p in s["by_package"])
                )
                print("   self (leaf) time:")
                for k, _, p in s["self"]:
                    print(f"     {p:5.1f}%  {k}")
                print("   by the deepest orderbell frame on the stack (what our code spends):")
                for k, _, p in s["by_orderbell_caller"]:
                    print(f"     {p:5.1f}%  {k}")
                print("   inclusive time:")
                for k, _, p in s["inclusive"]:
                    print(f"     {p:5.1f}%  {k}")

    # -- tear-down --------------------------------------------------------------------

    def cleanup(self) -> None:
        for p, _ in self.apis:
            with contextlib.suppress(Exception):
                p.stop()
        for w in self.workers:
            with contextlib.suppress(Exception):
                w.stop()
        if self.fake is not None:
            with contextlib.suppress(Exception):
                self.fake.stop()
        Managed.stop_all()
        if self.pg_name and self.args.postgres:
            try:
                pg_drop(self.args.postgres, self.pg_name)
            except Exception as exc:
                print(f"warning: could not drop database {self.pg_name}: {exc}", file=sys.stderr)
        if self.tmp_dir is not None:
            if self.args.keep:
                print(f"data directory kept: {self.tmp_dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.tmp_dir, ignore_errors=True)
        elif self.args.data_dir is not None:
            print(f"data directory: {self.args.data_dir}", file=sys.stderr)


def asyncio_run(coro: Any, *, uvloop_ok: bool) -> Any:
    loop_factory = None
    if uvloop_ok:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM stop the run cleanly (a shell that starts us in the background
    # may have left SIGINT ignored: take it back)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    run = Run(args)
    code = 0
    try:
        run.main()
        text = json.dumps(run.result, indent=2, default=str)
        if args.json_out:
            args.json_out.write_text(text + "\n")
        run.print_report()
        if args.json:
            print()
            print(text)
        f = run.result.get("pipeline", {})
        if f.get("missing") or f.get("timed_out"):
            code = 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        code = 130
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run.cleanup()
    return code


if __name__ == "__main__":
    sys.exit(main())
