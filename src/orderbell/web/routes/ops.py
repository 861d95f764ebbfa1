"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from orderbell.web.deps import ContainerDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and is migrated")
async def readyz(c: ContainerDep) -> Any:
    try:
        revision = await c.db.current_revision()
    except Exception as exc:  # readiness reports, it does not raise
        return JSONResponse({"status": "unavailable", "detail": str(exc)[:200]}, status_code=503)
    if revision is None:
        return JSONResponse(
            {"status": "unavailable", "detail": "run `orderbell db upgrade`"}, status_code=503
        )
    return {"status": "ready", "database": c.db.dialect, "revision": revision}


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(c: ContainerDep) -> Response:
    return Response(c.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
