"""The guest tracking page: ``/t/{token}`` (the unguessable token in every message).

The page shows the order's progress and updates itself from ``/t/{token}/events``
(server-sent events: a status change is pushed within about a second; a connection is
closed after five minutes and the browser reconnects). The preference centre's forms
carry a CSRF token bound to the tracking token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from orderbell.engine.guest_page import LANGUAGES, TrackingView
from orderbell.web.dashboard.pages import CsrfFailed, PageRoute, people, render, same_origin
from orderbell.web.tracking.i18n import texts

router = APIRouter(prefix="/t", route_class=PageRoute, include_in_schema=False)

CSRF_PURPOSE = "guest preferences"
SSE_LIFETIME = 300.0
SSE_INTERVAL = 0.5

Lang = Annotated[str | None, Query(max_length=8)]


def _context(request: Request, view: TrackingView) -> dict[str, object]:
    p = people(request)
    return {
        "v": view,
        "t": texts(view.lang),
        "csrf_token": p.staff.sign(CSRF_PURPOSE, view.token),
        "saved": request.query_params.get("saved"),
        "languages": LANGUAGES,
    }


@router.get("/{token}")
async def tracking_page(request: Request, token: str, lang: Lang = None) -> Response:
    view = await people(request).guests.view(token, lang)
    return render(request, "tracking/page.html", _context(request, view))


@router.get("/{token}/progress")
async def tracking_progress(request: Request, token: str, lang: Lang = None) -> Response:
    view = await people(request).guests.view(token, lang)
    return render(request, "tracking/_progress.html", _context(request, view))


def _sse(event: str, data: str, ident: str | None = None) -> str:
    lines = [f"event: {event}"]
    if ident:
        lines.append(f"id: {ident}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


@router.get("/{token}/events")
async def tracking_events(
    request: Request, token: str, lang: Lang = None, v: Annotated[str | None, Query()] = None
) -> Response:
    p = people(request)
    await p.guests.view(token, lang)  # 404 for an unknown token, before streaming
    since = request.headers.get("last-event-id") or v

    async def gone() -> bool:
        return await request.is_disconnected()

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        try:
            async for stamp in p.guests.changes(
                token, since, interval=SSE_INTERVAL, lifetime=SSE_LIFETIME, stop=gone
            ):
                if stamp is None:
                    yield ": keep-alive\n\n"
                    continue
                view = await p.guests.view(token, lang)
                html = p.env.get_template("tracking/_progress.html").render(_context(request, view))
                yield _sse("progress", html, stamp)
        except asyncio.CancelledError:  # server shutting down
            return

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/{token}/preferences")
async def preferences(request: Request, token: str) -> Response:
    p = people(request)
    form = await request.form()
    sent = str(form.get("csrf_token") or "")
    if not same_origin(request) or not p.staff.verify(CSRF_PURPOSE, token, sent):
        raise CsrfFailed()
    lang = str(form.get("lang") or "")
    action = str(form.get("action") or "")
    if action == "channel":
        await p.guests.choose_channel(token, str(form.get("family") or ""))
        saved = "channel"
    else:
        client = request.client.host if request.client else "?"
        agent = request.headers.get("user-agent", "")[:200]
        evidence = f"tracking page form ({action}) submitted from {client}, user agent {agent!r}"
        await p.guests.opt_out(token, action, evidence)
        saved = action
    query = f"?saved={saved}" + (f"&lang={lang}" if lang in LANGUAGES else "")
    return RedirectResponse(f"/t/{token}{query}#preferences", status_code=303)
