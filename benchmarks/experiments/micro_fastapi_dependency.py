#!/usr/bin/env python
"""A FastAPI route behind uvicorn: what a sync ``Depends`` costs next to an async one.

FastAPI runs a plain ``def`` dependency in its thread pool, one hand-off per request;
``orderbell.web.deps.container`` is such a dependency. This serves a minimal POST route
(read the body, answer small JSON) four ways and prints req/s and the server's CPU per
request at 32 concurrent requests. Loopback only; each server is a child process,
stopped after its measurement.

    .venv/bin/python benchmarks/experiments/micro_fastapi_dependency.py
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import socket
import time
from typing import Annotated

import aiohttp
from fastapi import Depends, FastAPI, Request


def make(kind: str) -> FastAPI:
    app = FastAPI()

    def sync_dep(request: Request) -> object:
        return request.app

    async def async_dep(request: Request) -> object:
        return request.app

    dep = sync_dep if kind == "sync" else async_dep

    @app.post("/x")
    async def x(request: Request, c: Annotated[object, Depends(dep)]) -> dict[str, object]:
        await request.body()
        return {"received": 1, "results": [{"order_id": 1, "status": "confirmed"}]}

    return app


def serve(kind: str, port: int, loop: str, http: str) -> None:
    import uvicorn

    uvicorn.run(
        make(kind),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop=loop,
        http=http,
    )


def cpu(pid: int) -> float:
    parts = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


async def blast(url: str, n: int, c: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as s:
        it = iter(range(n))

        async def lane() -> None:
            for _ in it:
                async with s.post(url, data=b'{"a":1}' * 40) as r:
                    await r.read()

        await asyncio.gather(*(lane() for _ in range(c)))


def main() -> None:
    for kind, loop, http in (
        ("sync", "asyncio", "httptools"),
        ("async", "asyncio", "httptools"),
        ("async", "uvloop", "httptools"),
        ("async", "asyncio", "h11"),
    ):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = mp.Process(target=serve, args=(kind, port, loop, http))
        p.start()
        try:
            url = f"http://127.0.0.1:{port}/x"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    asyncio.run(blast(url, 1, 1))
                    break
                except OSError:
                    time.sleep(0.2)
            asyncio.run(blast(url, 500, 32))
            assert p.pid is not None
            c0, t0 = cpu(p.pid), time.perf_counter()
            asyncio.run(blast(url, 4000, 32))
            dt, c1 = time.perf_counter() - t0, cpu(p.pid)
            print(
                f"dependency={kind} loop={loop} http={http}: {4000 / dt:.0f} req/s, "
                f"server CPU {1000 * (c1 - c0) / 4000:.3f} ms/request"
            )
        finally:
            p.terminate()
            p.join(10)


if __name__ == "__main__":
    main()
