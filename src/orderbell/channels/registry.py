"""Every outbound provider, by its registry key. Adding a provider: one module, one line."""

from __future__ import annotations

from typing import Any

CHANNELS: dict[str, Any] = {}
