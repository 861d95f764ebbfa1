"""The FastAPI application: ``create_app(container, run_worker=...)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from orderbell import __version__
from orderbell.bootstrap import Container
from orderbell.web import problems
from orderbell.web.dashboard import pages
from orderbell.web.dashboard import routes as dashboard
from orderbell.web.routes import api, callbacks, ops, privacy, webhooks
from orderbell.web.tracking import routes as tracking

log = logging.getLogger("orderbell.web")


def create_app(container: Container, *, run_worker: bool = False) -> FastAPI:
    """The HTTP app. With ``run_worker`` the dispatcher runs in the same process (serve)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        worker = None
        if run_worker:
            worker = asyncio.create_task(container.run_background(stop), name="orderbell-worker")
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                try:
                    await asyncio.wait_for(worker, timeout=15)
                except (TimeoutError, asyncio.CancelledError):
                    log.warning("worker did not stop in time; unfinished leases will be rescued")
            await container.aclose()

    app = FastAPI(
        title="Order Bell",
        version=__version__,
        description=(
            "Order status in from POS, stores and delivery partners; lawful, timely "
            "messages out to guests and staff. Errors are application/problem+json."
        ),
        lifespan=lifespan,
    )
    app.state.container = container
    problems.install(app)
    app.include_router(webhooks.router)
    app.include_router(callbacks.router)
    app.include_router(api.router)
    app.include_router(privacy.router)
    app.include_router(ops.router)
    # the staff dashboard, the guest tracking page and their static files
    app.state.people = pages.build_people(container)
    app.include_router(dashboard.router)
    app.include_router(tracking.router)
    app.mount("/static", StaticFiles(directory=str(pages.STATIC)), name="static")
    app.add_middleware(problems.BodyLimit, limit=container.settings.max_body_bytes)
    return app
