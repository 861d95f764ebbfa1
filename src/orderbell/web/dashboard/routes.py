"""The staff dashboard: ``/dashboard``. Server-rendered pages; htmx polls the board and
the order timeline; every action is a plain form POST with the CSRF token, answered by
a redirect (so the pages work without JavaScript too)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orderbell.engine.staff import Permission
from orderbell.errors import AuthError, ConflictError, PayloadError
from orderbell.web.dashboard import auth, chart
from orderbell.web.dashboard.auth import Acting, ActingDep, MemberDep
from orderbell.web.dashboard.pages import PageRoute, people, render

router = APIRouter(prefix="/dashboard", route_class=PageRoute, include_in_schema=False)

DONE_MESSAGES = {
    "resend": "Resend queued: the guest gets the current status again (if consent allows).",
    "status": "Status set.",
    "delay": "Marked delayed; the guest is told the new time.",
    "cancel": "Pending messages cancelled.",
    "optout": "Opt-out recorded. Nothing more will be sent on those channels.",
}


def _done(request: Request) -> str | None:
    return DONE_MESSAGES.get(request.query_params.get("done", ""))


def _back(path: str, **params: str) -> RedirectResponse:
    query = "?" + urlencode(params) if params else ""
    return RedirectResponse(path + query, status_code=303)


# --- signing in -------------------------------------------------------------------------


def _sign_in_page(
    request: Request, *, error: str | None = None, email: str = "", status: int = 200
) -> HTMLResponse:
    nonce, token = auth.new_sign_in_nonce(request)
    response = render(
        request,
        "dashboard/sign_in.html",
        {
            "csrf_token": token,
            "error": error,
            "email": email,
            "next": auth.safe_next(request.query_params.get("next")),
        },
        status=status,
    )
    auth.set_sign_in_cookie(request, response, nonce)
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    p = people(request)
    if await p.staff.session(request.cookies.get(auth.SESSION_COOKIE)) is not None:
        return RedirectResponse(auth.safe_next(request.query_params.get("next")), 303)
    return _sign_in_page(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    p = people(request)
    form = await request.form()
    email = str(form.get("email") or "")[:320]
    password = str(form.get("password") or "")[:1000]
    if not auth.check_sign_in_token(request, str(form.get("csrf_token") or "")):
        return _sign_in_page(
            request, error="The form expired; please sign in again.", email=email, status=403
        )
    try:
        signed = await p.staff.sign_in(email, password)
    except AuthError as exc:
        return _sign_in_page(request, error=str(exc).capitalize() + ".", email=email, status=401)
    response = RedirectResponse(auth.safe_next(str(form.get("next") or "")), status_code=303)
    auth.start_session(
        response,
        signed,
        secure=p.secure_cookies,
        max_age=int(p.staff.session_ttl.total_seconds()),
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, acting: ActingDep) -> Response:
    p = people(request)
    await p.staff.sign_out(acting.member)
    response = RedirectResponse("/dashboard/sign-in", status_code=303)
    auth.end_session(response, secure=p.secure_cookies)
    return response


# --- board ------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home(request: Request, member: MemberDep) -> Response:
    locations = await people(request).board.locations(member)
    if len(locations) == 1:
        return RedirectResponse(f"/dashboard/locations/{locations[0].id}", status_code=303)
    return render(
        request,
        "dashboard/home.html",
        {"member": member, "locations": locations, "nav": "board"},
    )


@router.get("/locations/{location_id}")
async def board_page(request: Request, location_id: int, member: MemberDep) -> Response:
    p = people(request)
    board = await p.board.board(member, location_id)
    locations = await p.board.locations(member)
    return render(
        request,
        "dashboard/board.html",
        {"member": member, "board": board, "locations": locations, "nav": "board"},
    )


@router.get("/locations/{location_id}/columns")
async def board_columns(request: Request, location_id: int, member: MemberDep) -> Response:
    board = await people(request).board.board(member, location_id)
    return render(request, "dashboard/_columns.html", {"board": board})


@router.get("/figures")
async def figures_home(
    request: Request, member: MemberDep, location: int | None = None
) -> Response:
    """The figures of the location asked for, else of the member's first location."""
    locations = await people(request).board.locations(member)
    ids = [loc.id for loc in locations]
    if not ids:
        return RedirectResponse("/dashboard", status_code=303)
    target = location if location in ids else ids[0]
    return RedirectResponse(f"/dashboard/locations/{target}/figures", status_code=303)


@router.get("/locations/{location_id}/figures")
async def figures_page(
    request: Request,
    location_id: int,
    member: MemberDep,
    days: Annotated[int, Query(ge=1, le=90)] = 7,
) -> Response:
    p = people(request)
    figures = await p.insights.figures(member, location_id, days)
    locations = await p.board.locations(member)
    return render(
        request,
        "dashboard/figures.html",
        {
            "member": member,
            "figures": figures,
            "chart": chart.bars(figures.per_day),
            "locations": locations,
            "nav": "figures",
        },
    )


# --- orders -----------------------------------------------------------------------------


@router.get("/orders/{order_id}")
async def order_page(request: Request, order_id: int, member: MemberDep) -> Response:
    page = await people(request).board.order_page(member, order_id)
    return render(
        request,
        "dashboard/order.html",
        {
            "member": member,
            "page": page,
            "done": _done(request),
            "error": None,
            "can_cancel": member.can(Permission.CANCEL_MESSAGES),
            "nav": "board",
        },
    )


@router.get("/orders/{order_id}/timeline")
async def order_timeline(
    request: Request, order_id: int, member: MemberDep, v: str | None = None
) -> Response:
    page = await people(request).board.order_page(member, order_id)
    if v and v == page.stamp:
        return Response(status_code=204)  # unchanged: htmx keeps what is shown
    return render(request, "dashboard/_timeline.html", {"page": page})


async def _act(
    request: Request, order_id: int, acting: Acting, done: str, action: Awaitable[object]
) -> Response:
    """Run an order action; a refusal (a status the machine will not take, a time in the
    past...) is shown on the order page, not on an error page."""
    try:
        await action
    except (PayloadError, ConflictError) as exc:
        page = await people(request).board.order_page(acting.member, order_id)
        return render(
            request,
            "dashboard/order.html",
            {
                "member": acting.member,
                "page": page,
                "done": None,
                "error": str(exc),
                "can_cancel": acting.member.can(Permission.CANCEL_MESSAGES),
                "nav": "board",
            },
            status=exc.status,
        )
    return _back(f"/dashboard/orders/{order_id}", done=done)


@router.post("/orders/{order_id}/resend")
async def resend(request: Request, order_id: int, acting: ActingDep) -> Response:
    p = people(request)
    # scope and role first: a foreign id is "not found" whatever else is wrong
    await p.staff.order_in_scope(acting.member, order_id)
    return await _act(
        request, order_id, acting, "resend", p.actions.resend(acting.member, order_id)
    )


@router.post("/orders/{order_id}/status")
async def set_status(request: Request, order_id: int, acting: ActingDep) -> Response:
    p = people(request)
    await p.staff.order_in_scope(acting.member, order_id)
    action = p.actions.set_status(
        acting.member,
        order_id,
        acting.field("status"),
        acting.field("note") or None,
        force=acting.field("force") == "yes",
    )
    return await _act(request, order_id, acting, "status", action)


@router.post("/orders/{order_id}/delay")
async def mark_delayed(request: Request, order_id: int, acting: ActingDep) -> Response:
    p = people(request)
    await p.staff.order_in_scope(acting.member, order_id)

    async def go() -> None:
        try:
            minutes = int(acting.field("minutes") or "0")
        except ValueError:
            raise PayloadError("the new time must be a number of minutes from now") from None
        if not 1 <= minutes <= 24 * 60:
            raise PayloadError("the new time must be between 1 minute and 24 hours from now")
        eta = p.staff.now() + timedelta(minutes=minutes)
        await p.actions.mark_delayed(acting.member, order_id, eta, acting.field("note") or None)

    return await _act(request, order_id, acting, "delay", go())


@router.post("/orders/{order_id}/cancel-messages")
async def cancel_messages(request: Request, order_id: int, acting: ActingDep) -> Response:
    p = people(request)
    await p.staff.order_in_scope(acting.member, order_id)
    acting.member.require(Permission.CANCEL_MESSAGES)
    return await _act(
        request, order_id, acting, "cancel", p.actions.cancel_pending(acting.member, order_id)
    )


# --- guests and search ------------------------------------------------------------------


@router.get("/customers/{customer_id}")
async def guest_page(request: Request, customer_id: int, member: MemberDep) -> Response:
    record = await people(request).board.guest(member, customer_id)
    return render(
        request,
        "dashboard/guest.html",
        {
            "member": member,
            "guest": record,
            "done": _done(request),
            "can_opt_out": member.can(Permission.OPT_OUT),
            "nav": "search",
        },
    )


@router.post("/customers/{customer_id}/opt-out")
async def opt_out(request: Request, customer_id: int, acting: ActingDep) -> Response:
    family = acting.field("family") or "all"
    await people(request).board.opt_out(acting.member, customer_id, family)
    return _back(f"/dashboard/customers/{customer_id}", done="optout")


@router.get("/search")
async def search(
    request: Request, member: MemberDep, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    results = await people(request).board.search(member, q) if q.strip() else []
    return render(
        request,
        "dashboard/search.html",
        {"member": member, "q": q, "results": results, "nav": "search"},
    )


# --- templates --------------------------------------------------------------------------


@router.get("/templates")
async def templates_page(
    request: Request,
    member: MemberDep,
    name: Annotated[str | None, Query(max_length=100)] = None,
    locale: Annotated[str | None, Query(max_length=16)] = None,
    family: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    preview = await people(request).insights.preview(
        member, name=name, locale=locale, family=family
    )
    html_src = None
    if preview.html:
        html_src = "/dashboard/templates/html?" + urlencode(
            {"name": preview.name, "locale": preview.locale, "family": preview.family}
        )
    return render(
        request,
        "dashboard/templates.html",
        {"member": member, "preview": preview, "html_src": html_src, "nav": "templates"},
    )


@router.get("/templates/html")
async def template_html(
    request: Request,
    member: MemberDep,
    name: Annotated[str | None, Query(max_length=100)] = None,
    locale: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """The email HTML on its own, for a sandboxed iframe (its own strict CSP)."""
    preview = await people(request).insights.preview(
        member, name=name, locale=locale, family="email"
    )
    return HTMLResponse(
        preview.html or "",
        headers={
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                "frame-ancestors 'self'; sandbox"
            ),
            "X-Frame-Options": "SAMEORIGIN",
        },
    )
