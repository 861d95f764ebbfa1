"""A loopback fake-server base for provider and platform fakes.

A fake is a real HTTP server on 127.0.0.1 (ephemeral port) built on ``aiohttp.web``. A
subclass declares its routes in ``add_routes`` (``self.route(method, path, handler)``),
checks each request as the real API would, and says how the provider shapes an error in
``error_response``. This base gives every fake, for free:

* recording: every request (method, path, headers, raw body, parsed fields, wall and
  monotonic receive times, the status answered) lands in ``fake.requests``;
* fault injection, consumed one per request in arrival order: ``fail_next(n, status)``,
  ``delay_next(n, seconds)`` (combines with the others), ``reset_next(n)`` (TCP reset,
  or a clean close with ``hard=False``), ``truncate_next(n)`` (a cut-short answer), and a
  global ``latency``;
* three ways to run: in the current loop (``async with FakeX() as fake``), in a
  background thread with its own loop (``with FakeX() as fake``), or as a process
  (``python -m tests.fakes.serve NAME --port 0 --print-port``; see ``process.py``);
* control endpoints for other processes: ``GET /_fake/requests[?since=N]``,
  ``GET /_fake/stats``, ``POST /_fake/reset``, ``POST /_fake/faults``,
  ``POST /_fake/config`` (``{"latency": seconds}``).

Recording is a list append, so the benchmark can push thousands of requests a second.

Adding a provider fake::

    class FakeAcme(FakeServer):
        name = "acme"                                   # python -m tests.fakes.serve acme

        def add_routes(self) -> None:
            self.route("POST", "/v1/messages", self.send)

        def error_response(self, status, message=None, code=None) -> web.Response:
            return json_response({"error": {"code": code, "message": message}}, status)

        async def send(self, request: web.Request, rec: RecordedRequest) -> web.Response:
            if rec.headers.get("authorization") != f"Bearer {self.token}":
                return self.error_response(401, "bad token")
            ...                                         # rec.fields: parsed form / JSON
            return json_response({"id": "m-1"}, 200)

then list it in ``tests/fakes/registry.py`` and add a ``ProviderCase`` to
``tests/channels/cases.py``: the shared contract suite runs over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

Handler = Callable[[web.Request, "RecordedRequest"], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: float  # time.time()
    received_monotonic: float  # time.monotonic()
    #: the parsed body: a dict for a form (a list for a repeated name), the JSON value, or None
    fields: Any = None
    #: the parsed form as ordered pairs (repeated names kept), for form bodies
    pairs: list[tuple[str, str]] = field(default_factory=list)
    #: the status the fake answered; None while pending, or when the connection was cut
    status: int | None = None
    #: the injected fault applied, if any: "fail", "reset", "truncate"
    fault: str | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query_string,
            "received_at": self.received_at,
            "fields": self.fields,
            "status": self.status,
            "fault": self.fault,
            "headers": self.headers,
        }


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # "fail", "reset", "truncate"
    status: int = 500
    body: Any = None
    headers: dict[str, str] | None = None
    hard: bool = True


def parse_body(content_type: str, body: bytes) -> tuple[Any, list[tuple[str, str]]]:
    """The body as fields: form -> (dict, pairs), JSON -> (value, []), else (None, [])."""
    if content_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return None, []
        fields: dict[str, Any] = {}
        for name, value in pairs:
            if name in fields:
                existing = fields[name]
                fields[name] = (
                    [*existing, value] if isinstance(existing, list) else [existing, value]
                )
            else:
                fields[name] = value
        return fields, pairs
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return orjson.loads(body), []
        except orjson.JSONDecodeError:
            return None, []
    return None, []


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


class FakeServer:
    """Base of every loopback fake. Subclasses set ``name`` and override ``add_routes``."""

    name: ClassVar[str] = "fake"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        self.host = host
        self.requested_port = port
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self._delays: deque[float] = deque()
        self._faults: deque[Fault] = deque()
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------------- subclass API

    def add_routes(self) -> None:
        """Declare the provider's routes with ``self.route``."""
        raise NotImplementedError

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        """An error answer shaped as the provider shapes it (override per provider)."""
        return json_response({"error": message or f"HTTP {status}", "code": code}, status)

    def route(self, method: str, path: str, handler: Handler) -> None:
        assert self._app is not None, "route() is called from add_routes()"
        self._app.router.add_route(method, path, self._wrap(handler))

    # ----------------------------------------------------------------- faults

    def fail_next(
        self,
        n: int,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (the provider's error shape, or
        ``body``: a dict/list is sent as JSON, str/bytes as they are)."""
        self._faults.extend(
            Fault("fail", status=status, body=body, headers=headers) for _ in range(n)
        )

    def delay_next(self, n: int, seconds: float) -> None:
        """Hold the next ``n`` requests ``seconds`` before answering (or applying a fault)."""
        self._delays.extend(seconds for _ in range(n))

    def reset_next(self, n: int, *, hard: bool = True) -> None:
        """Cut the connection of the next ``n`` requests without answering: a TCP RST
        (the client sees ECONNRESET) or, with ``hard=False``, a clean close (the client
        sees the server disconnect)."""
        self._faults.extend(Fault("reset", hard=hard) for _ in range(n))

    def truncate_next(self, n: int) -> None:
        """Answer the next ``n`` requests with a body shorter than its Content-Length."""
        self._faults.extend(Fault("truncate") for _ in range(n))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._delays.clear()

    def reset(self) -> None:
        """Forget recorded requests and pending faults."""
        self.requests.clear()
        self.clear_faults()

    # ----------------------------------------------------------------- inspection

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"fake {self.name} is not running")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def last(self) -> RecordedRequest:
        if not self.requests:
            raise AssertionError(f"fake {self.name} received no request")
        return self.requests[-1]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:  # noqa: ASYNC109
        """Wait until at least ``count`` requests arrived (works across threads)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake {self.name}: {len(self.requests)} of {count} requests")
            await asyncio.sleep(0.005)
        return list(self.requests)

    def wait_for_sync(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake {self.name}: {len(self.requests)} of {count} requests")
            time.sleep(0.005)
        return list(self.requests)

    # ----------------------------------------------------------------- lifecycle: in-loop

    def build_app(self) -> web.Application:
        self._app = web.Application(client_max_size=64 * 1024 * 1024)
        self._app.router.add_get("/_fake/requests", self._control_requests)
        self._app.router.add_get("/_fake/stats", self._control_stats)
        self._app.router.add_post("/_fake/reset", self._control_reset)
        self._app.router.add_post("/_fake/faults", self._control_faults)
        self._app.router.add_post("/_fake/config", self._control_config)
        self.add_routes()
        with contextlib.suppress(RuntimeError):  # unless the fake has its own catch-all
            self._app.router.add_route("*", "/{tail:.*}", self._wrap(self._unmatched))
        return self._app

    async def start(self) -> Self:
        app = self.build_app()
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.25
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port, reuse_address=True)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- lifecycle: thread

    def start_in_thread(self, timeout: float = 10.0) -> Self:
        """Serve from a background thread with its own event loop."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"fake {self.name} did not start in {timeout} s")
        if failure:
            raise failure[0]
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._thread_loop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self._thread_loop = None

    def __enter__(self) -> Self:
        return self.start_in_thread()

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()

    # ----------------------------------------------------------------- request path

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            headers = {k.lower(): v for k, v in request.headers.items()}
            rec = RecordedRequest(
                method=request.method,
                path=request.path,
                query_string=request.query_string,
                headers=headers,
                body=body,
                received_at=time.time(),
                received_monotonic=time.monotonic(),
            )
            rec.fields, rec.pairs = parse_body(rec.content_type, body)
            self.requests.append(rec)
            delay = self.latency
            if self._delays:
                try:
                    delay += self._delays.popleft()
                except IndexError:
                    pass
            if delay > 0:
                await asyncio.sleep(delay)
            fault: Fault | None = None
            if self._faults:
                try:
                    fault = self._faults.popleft()
                except IndexError:
                    fault = None
            if fault is not None:
                rec.fault = fault.kind
                return self._apply_fault(fault, request, rec)
            response = await handler(request, rec)
            rec.status = response.status
            return response

        return wrapped

    def _apply_fault(
        self, fault: Fault, request: web.Request, rec: RecordedRequest
    ) -> web.Response:
        if fault.kind == "fail":
            if fault.body is None:
                response = self.error_response(fault.status)
            elif isinstance(fault.body, dict | list):
                response = json_response(fault.body, fault.status)
            else:
                raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
                response = web.Response(body=raw, status=fault.status)
            if fault.headers:
                response.headers.update(fault.headers)
            rec.status = fault.status
            return response
        transport = request.transport
        if transport is None:
            raise asyncio.CancelledError
        if fault.kind == "truncate":
            transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b'Content-Length: 4096\r\n\r\n{"partial": tr'
            )
            transport.close()
        elif fault.hard:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
        # Nothing more may be written on this connection: tell aiohttp to drop the request.
        raise asyncio.CancelledError

    async def _unmatched(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return self.error_response(404, f"The requested resource {request.path} was not found")

    # ----------------------------------------------------------------- control endpoints

    async def _control_requests(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return json_response([rec.to_json() for rec in self.requests[since:]])

    async def _control_stats(self, request: web.Request) -> web.Response:
        return json_response(
            {"name": self.name, "count": len(self.requests), "pending_faults": len(self._faults)}
        )

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"ok": True})

    async def _control_faults(self, request: web.Request) -> web.Response:
        """Body: {"kind": "fail"|"delay"|"reset"|"truncate", "n": 1, "status": 500,
        "body": ..., "headers": {...}, "seconds": 1.0, "hard": true}"""
        spec = await request.json()
        kind, n = spec.get("kind"), int(spec.get("n", 1))
        if kind == "fail":
            self.fail_next(n, int(spec["status"]), spec.get("body"), spec.get("headers"))
        elif kind == "delay":
            self.delay_next(n, float(spec["seconds"]))
        elif kind == "reset":
            self.reset_next(n, hard=bool(spec.get("hard", True)))
        elif kind == "truncate":
            self.truncate_next(n)
        else:
            return json_response({"error": f"unknown fault kind {kind!r}"}, 400)
        return json_response({"ok": True})

    async def _control_config(self, request: web.Request) -> web.Response:
        spec = await request.json()
        if "latency" in spec:
            self.latency = float(spec["latency"])
        return json_response({"ok": True, "latency": self.latency})
