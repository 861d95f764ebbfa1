"""Every order source, by its URL segment. Adding a platform: one module, one line."""

from __future__ import annotations

from typing import Any

from orderbell.sources.generic import GenericWebhookSource

SOURCES: dict[str, Any] = {
    "generic": GenericWebhookSource,
}
