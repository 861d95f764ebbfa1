"""Errors as RFC 9457 problem+json bodies; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orderbell.errors import (
    AuthError,
    ConfigError,
    InputError,
    OrderBellError,
    PayloadTooLarge,
    StoreError,
)

log = logging.getLogger("orderbell.web")

PROBLEM = "application/problem+json"
TYPE_BASE = "https://orderbell.dev/problems/"


def problem(
    status: int, title: str, detail: str, *, slug: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v})
    headers = {"WWW-Authenticate": "Bearer"} if slug == AuthError.type_slug else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return problem(
            exc.status,
            exc.title,
            exc.detail,
            slug=exc.type_slug,
            instance=request.url.path,
            errors=exc.errors,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        malformed = False
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            if err.get("type") == "json_invalid":
                malformed = True
            errors.append({"field": ".".join(loc) or "(body)", "message": err.get("msg", "")})
        if malformed:
            return problem(
                400,
                "Malformed JSON",
                "the body is not valid JSON",
                slug="invalid-json",
                instance=request.url.path,
                errors=errors,
            )
        first = errors[0] if errors else {"field": "(body)", "message": "invalid"}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return problem(
            422,
            "Invalid request",
            f"{first['field']}: {first['message']}{more}",
            slug="invalid-payload",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI turns any error raised while it reads a body into "400 There was an
        # error parsing the body"; ours (BodyLimit's PayloadTooLarge) keeps its own status
        if isinstance(exc.__cause__, InputError):
            return await _input(request, exc.__cause__)
        titles = {404: "Not found", 405: "Method not allowed"}
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail),
            slug="http-" + str(exc.status_code),
            instance=request.url.path,
        )

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store error on %s: %s", request.url.path, exc)
        return problem(
            503,
            "Storage unavailable",
            "the database could not be reached; retry later",
            slug="store-unavailable",
            instance=request.url.path,
        )

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        log.error("configuration error on %s: %s", request.url.path, exc)
        return problem(
            500, "Configuration error", str(exc), slug="config-error", instance=request.url.path
        )

    @app.exception_handler(OrderBellError)
    async def _other(request: Request, exc: OrderBellError) -> JSONResponse:
        log.error("error on %s: %s", request.url.path, exc)
        return problem(500, "Internal error", str(exc), slug="internal", instance=request.url.path)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem(
            500,
            "Internal error",
            "an unexpected error occurred; it has been logged",
            slug="internal",
            instance=request.url.path,
        )


class BodyLimit:
    """Pure ASGI middleware: refuse bodies over ``limit`` bytes with 413, before routing."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise PayloadTooLarge(f"the body is over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        response = problem(
            413,
            PayloadTooLarge.title,
            f"the body is over {self.limit} bytes",
            slug=PayloadTooLarge.type_slug,
            instance=scope.get("path"),
        )
        await response(scope, receive, send)
