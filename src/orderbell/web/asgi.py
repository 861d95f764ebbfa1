"""ASGI factory for running the API under an external server or with several processes:
``uvicorn --factory orderbell.web.asgi:app --workers 4`` (settings from the environment)."""

from __future__ import annotations

from fastapi import FastAPI

from orderbell.bootstrap import build
from orderbell.config import Settings
from orderbell.logs import configure
from orderbell.web.app import create_app


def app() -> FastAPI:
    settings = Settings.from_env()
    configure(level=settings.log_level, json_output=settings.log_json)
    return create_app(build(settings), run_worker=False)
