"""What the people's pages share: the Jinja2 environment (autoescaped), the engine
services they call, security headers, and a route class that turns our errors into HTML
pages (a foreign id is a 404 page, never a JSON body or a traceback)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from orderbell.bootstrap import Container
from orderbell.engine import staff_actions
from orderbell.engine.board import BoardService
from orderbell.engine.guest_page import GuestPageService
from orderbell.engine.insights import InsightService
from orderbell.engine.staff import PermissionDenied, StaffService, signing_key
from orderbell.errors import InputError, NotFoundError, OrderBellError

log = logging.getLogger("orderbell.web")

WEB = Path(__file__).resolve().parent.parent
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"

DASH = "\u2013"  # shown for "no figure"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)


class SignInRequired(Exception):
    """No valid session: send the person to the sign-in page."""


class CsrfFailed(Exception):
    """A state-changing request without the right CSRF token (or from another origin)."""


@dataclass
class People:
    """The engine services behind the dashboard and the tracking page."""

    staff: StaffService
    board: BoardService
    insights: InsightService
    guests: GuestPageService
    actions: staff_actions.Actions
    secure_cookies: bool
    env: Environment


def _percent(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return DASH
    if value < 60:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value escaped, in every template
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["percent"] = _percent
    env.filters["seconds"] = _seconds
    return env


def build_people(container: Container) -> People:
    s = container.settings
    staff = StaffService(container.db, signing_key=signing_key(s), clock=container.clock)
    board = BoardService(
        container.db, container.tenants, staff, clock=container.clock, public_url=s.public_url
    )
    return People(
        staff=staff,
        board=board,
        insights=InsightService(
            container.db, board, clock=container.clock, public_url=s.public_url
        ),
        guests=GuestPageService(container.db, container.tenants, clock=container.clock),
        actions=staff_actions.Actions(container.overrides, staff),
        secure_cookies=s.public_url.startswith("https://"),
        env=make_env(),
    )


def people(request: Request) -> People:
    p: People = request.app.state.people
    return p


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    p = people(request)
    html = p.env.get_template(name).render({"request": request, **(context or {})})
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def same_origin(request: Request) -> bool:
    """A browser's Origin (when it sends one) must be this host: a second CSRF fence."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


def _security_headers(response: Response, *, tracking: bool) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # same-origin: the tracking token never leaves in a Referer, and browsers still send a
    # real Origin on our own form posts (with no-referrer they send "Origin: null")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    if tracking:
        response.headers.setdefault("X-Robots-Tag", "noindex")


def _error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    tracking = request.url.path.startswith("/t/")
    return render(
        request,
        "error.html",
        {"status": status, "title": title, "detail": detail, "tracking": tracking},
        status=status,
    )


class PageRoute(APIRoute):
    """Routes that answer HTML: our errors become pages, every answer gets the headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            tracking = request.url.path.startswith("/t/")
            try:
                response = await original(request)
            except SignInRequired:
                target = "/dashboard/sign-in"
                path = request.url.path
                if request.method == "GET" and path not in ("/dashboard", "/dashboard/"):
                    target += "?next=" + path
                if request.headers.get("hx-request"):
                    response = Response(status_code=200, headers={"HX-Redirect": target})
                else:
                    response = RedirectResponse(target, status_code=303)
            except CsrfFailed:
                response = _error_page(
                    request,
                    403,
                    "This form has expired",
                    "Go back, reload the page and try again.",
                )
            except NotFoundError:
                response = _error_page(
                    request, 404, "Not found", "There is nothing here, or it is not yours to see."
                )
            except PermissionDenied as exc:
                response = _error_page(request, 403, "Not allowed", str(exc))
            except InputError as exc:
                response = _error_page(request, exc.status, exc.title, str(exc))
            except OrderBellError:
                log.exception("error on %s", request.url.path)
                response = _error_page(
                    request, 500, "Something went wrong", "It has been logged; try again shortly."
                )
            _security_headers(response, tracking=tracking)
            return response

        return handler


def now_text(value: datetime) -> str:
    return value.strftime("%H:%M:%S")
