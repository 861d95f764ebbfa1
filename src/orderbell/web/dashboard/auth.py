"""Dashboard sign-in state and CSRF, as FastAPI dependencies.

- The session cookie ``ob_session`` holds a random token (the database keeps its hash):
  HttpOnly, SameSite=Lax, Path=/dashboard, Secure when the public URL is https.
- Every state-changing request carries the session's synchronizer token, as the form
  field ``csrf_token`` or the ``X-CSRF-Token`` header, and (when the browser sends one)
  an ``Origin`` equal to this host.
- The sign-in form has no session yet: it pairs a random nonce in the ``ob_signin``
  cookie with an HMAC of it in the form.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from orderbell.engine.staff import SignedIn, StaffMember
from orderbell.web.dashboard.pages import CsrfFailed, SignInRequired, people, same_origin

SESSION_COOKIE = "ob_session"
SIGNIN_COOKIE = "ob_signin"
COOKIE_PATH = "/dashboard"
SIGNIN_PURPOSE = "dashboard sign-in"


async def current_member(request: Request) -> StaffMember:
    member = await people(request).staff.session(request.cookies.get(SESSION_COOKIE))
    if member is None:
        raise SignInRequired()
    return member


@dataclass(frozen=True)
class Acting:
    """A signed-in member making a state-changing request that passed the CSRF check."""

    member: StaffMember
    form: FormData

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name)
        return value.strip()[:1000] if isinstance(value, str) else default


async def acting_member(request: Request) -> Acting:
    member = await current_member(request)
    form = await request.form()
    sent = form.get("csrf_token") or request.headers.get("x-csrf-token")
    if not same_origin(request) or not people(request).staff.check_csrf(
        member, sent if isinstance(sent, str) else None
    ):
        raise CsrfFailed()
    return Acting(member, form)


MemberDep = Annotated[StaffMember, Depends(current_member)]
ActingDep = Annotated[Acting, Depends(acting_member)]


def start_session(response: Response, signed: SignedIn, *, secure: bool, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    response.delete_cookie(SIGNIN_COOKIE, path=COOKIE_PATH)


def end_session(response: Response, *, secure: bool) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure
    )


def new_sign_in_nonce(request: Request) -> tuple[str, str]:
    """A fresh nonce for the sign-in form's cookie, and the token the form must echo."""
    nonce = secrets.token_urlsafe(24)
    return nonce, people(request).staff.sign(SIGNIN_PURPOSE, nonce)


def set_sign_in_cookie(request: Request, response: Response, nonce: str) -> None:
    response.set_cookie(
        SIGNIN_COOKIE,
        nonce,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=people(request).secure_cookies,
    )


def check_sign_in_token(request: Request, sent: str | None) -> bool:
    nonce = request.cookies.get(SIGNIN_COOKIE, "")
    return same_origin(request) and people(request).staff.verify(SIGNIN_PURPOSE, nonce, sent)


def safe_next(target: str | None) -> str:
    """Only paths inside the dashboard are followed after sign-in (no open redirect)."""
    if (
        target
        and target.startswith("/dashboard")
        and not target.startswith("//")
        and "\\" not in target
        and all(ch.isprintable() and not ch.isspace() for ch in target)
    ):
        return target
    return "/dashboard"
