"""Data rights over the API (tenant API key) and the guest's one-click unsubscribe page.

* ``GET /v1/privacy/export?phone=|email=``: everything held about a guest, as JSON.
* ``POST /v1/privacy/erase``: erase their personal data (audited with the actor).
* ``GET /u/{token}``: a page with a confirm button. It changes nothing, because mail
  scanners open links in emails.
* ``POST /u/{token}``: the RFC 8058 one-click unsubscribe (body
  ``List-Unsubscribe=One-Click``) and the page's button. Idempotent; 200 every time.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from orderbell.engine.privacy import ExpiredLink
from orderbell.errors import NotFoundError
from orderbell.web.deps import ContainerDep, TenantDep
from orderbell.web.routes.api import Actor

router = APIRouter(tags=["privacy"])


@router.get("/v1/privacy/export", summary="Everything held about a guest (GDPR access)")
async def export(
    tenant_id: TenantDep,
    c: ContainerDep,
    phone: str | None = Query(default=None, max_length=64),
    email: str | None = Query(default=None, max_length=320),
) -> dict[str, Any]:
    return await c.privacy.export(tenant_id, phone=phone, email=email)


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    actor: str | None = Field(default=None, max_length=200, description="Who asks; audited")


@router.post(
    "/v1/privacy/erase",
    summary="Erase a guest's personal data; history stays under a pseudonym (GDPR erasure)",
)
async def erase(
    data: EraseIn, tenant_id: TenantDep, c: ContainerDep, x_actor: Actor = None
) -> dict[str, Any]:
    result = await c.privacy.erase(
        tenant_id, phone=data.phone, email=data.email, actor=data.actor or x_actor
    )
    return result.as_dict()


# -- one-click unsubscribe --------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title></head>
<body style="font-family:Helvetica,Arial,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1f2933;">
<h1 style="font-size:1.4rem;">{title}</h1>
{body}
</body></html>
"""

_KEEP = (
    "<p>Order updates (confirmation, ready, on its way) are not affected: you still get "
    "those for orders you place.</p>"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=escape(title), body=body),
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _bad(exc: Exception) -> HTMLResponse:
    status = 400 if isinstance(exc, ExpiredLink) else 404
    return _page("This link does not work", f"<p>{escape(str(exc))}.</p>", status)


@router.get("/u/{token}", include_in_schema=False)
async def unsubscribe_page(token: str, c: ContainerDep) -> HTMLResponse:
    try:
        target = await c.privacy.check(token)
    except (NotFoundError, ExpiredLink) as exc:
        return _bad(exc)
    who = escape(target.tenant_name or "us")
    return _page(
        "Unsubscribe from emails",
        f"<p>Stop follow-up and marketing emails from {who}?</p>{_KEEP}"
        f'<form method="post" action="/u/{escape(token)}">'
        '<button type="submit" style="padding:10px 16px;">Unsubscribe</button></form>',
    )


@router.post("/u/{token}", include_in_schema=False)
async def unsubscribe(token: str, request: Request, c: ContainerDep) -> HTMLResponse:
    body = (await request.body())[:200].decode("utf-8", "replace")
    how = "one-click (RFC 8058)" if "List-Unsubscribe=One-Click" in body else "confirm button"
    agent = request.headers.get("user-agent", "")[:200]
    try:
        result = await c.privacy.unsubscribe(token, evidence=f"{how}; user agent: {agent}")
    except (NotFoundError, ExpiredLink) as exc:
        return _bad(exc)
    who = escape(result.target.tenant_name or "us")
    done = "You are unsubscribed" if result.changed else "You were already unsubscribed"
    return _page(
        done,
        f"<p>{done} from follow-up and marketing emails from {who}. It takes effect "
        f"now.</p>{_KEEP}",
    )
