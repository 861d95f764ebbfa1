"""Request dependencies: the container and the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from orderbell.bootstrap import Container


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


async def tenant(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> int:
    key = None
    if authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    c: Container = request.app.state.container
    return await c.orders.authenticate(key)


ContainerDep = Annotated[Container, Depends(container)]
TenantDep = Annotated[int, Depends(tenant)]
