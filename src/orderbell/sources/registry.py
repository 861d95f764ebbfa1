"""Every order source, by its URL segment. Adding a platform: one module, one line."""

from __future__ import annotations

from typing import Any

from orderbell.sources.clover import CloverSource
from orderbell.sources.doordash import DoorDashDriveSource
from orderbell.sources.generic import GenericWebhookSource
from orderbell.sources.hubspot import HubSpotSource
from orderbell.sources.shopify import ShopifySource
from orderbell.sources.square import SquareSource
from orderbell.sources.toast import ToastSource
from orderbell.sources.uber_direct import UberDirectSource
from orderbell.sources.zoho import ZohoCrmSource

SOURCES: dict[str, Any] = {
    "generic": GenericWebhookSource,
    "shopify": ShopifySource,
    "square": SquareSource,
    "toast": ToastSource,
    "clover": CloverSource,
    "hubspot": HubSpotSource,
    "zoho": ZohoCrmSource,
    "doordash": DoorDashDriveSource,
    "uber_direct": UberDirectSource,
}
