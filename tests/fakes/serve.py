"""Serve one fake as a process, for benchmarks and end-to-end tests in other processes.

    python -m tests.fakes.serve twilio --port 0 --print-port
    python -m tests.fakes.serve sendgrid --port 8025 --option api_key=SG.x --latency 0.05

With ``--print-port`` the first line on stdout is the port. The fake serves until it is
killed (SIGTERM or SIGINT). What arrived: ``GET /_fake/requests``; forget it:
``POST /_fake/reset``; faults: ``POST /_fake/faults`` (see ``harness.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from tests.fakes.registry import FAKES


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.serve", description=__doc__)
    parser.add_argument("name", choices=sorted(FAKES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--print-port", action="store_true", help="print the port, then serve")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor option of the fake, e.g. auth_token=secret (repeatable)",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the default event loop")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    options = dict(item.split("=", 1) for item in args.option)
    fake = FAKES[args.name](host=args.host, port=args.port, latency=args.latency, **options)
    await fake.start()
    if args.print_port:
        print(fake.port, flush=True)
    else:
        print(f"fake {args.name} serving on {fake.base_url}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    loop_factory = None
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()
