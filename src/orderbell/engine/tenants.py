"""Tenant configuration as the engine uses it: read from the store, turned into domain
objects, cached briefly, and the provider adapters built from it (secrets decrypted only
here, in memory)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orderbell.channels import registry as channel_registry
from orderbell.channels.base import Channel
from orderbell.crypto import SecretBox
from orderbell.domain.model import (
    AvailableChannel,
    ChannelFamily,
    Fulfillment,
    Location,
    Purpose,
    Rule,
    Trigger,
)
from orderbell.domain.policy import DEFAULT_RULES
from orderbell.domain.templates import TemplateSet
from orderbell.errors import ConfigError
from orderbell.http import HttpClient
from orderbell.store import setup as store_setup
from orderbell.store.database import Database
from orderbell.store.setup import TenantSnapshot


@dataclass(frozen=True)
class LocationConfig:
    id: int
    slug: str
    location: Location
    country: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class ChannelConfigRow:
    id: int
    name: str
    provider: str
    family: ChannelFamily
    location_id: int | None
    priority: int
    settings: Mapping[str, Any]
    secrets: str | None


@dataclass(frozen=True)
class TenantConfig:
    id: int
    slug: str
    name: str
    locations: dict[int, LocationConfig]
    channels: dict[str, ChannelConfigRow]
    rules: tuple[tuple[int | None, Rule], ...]  # (location_id or None, rule)
    templates: TemplateSet
    loaded_at: float = field(default=0.0)
    #: an erased guest's opt-outs are on the suppression list: new guests are checked
    has_suppressions: bool = False

    def location(self, location_id: int | None) -> LocationConfig:
        if location_id is not None and location_id in self.locations:
            return self.locations[location_id]
        if self.locations:
            return self.locations[min(self.locations)]
        return LocationConfig(0, "default", Location(name=self.name), "US", {})

    def location_by_slug(self, slug: str | None) -> LocationConfig | None:
        if not slug:
            return None
        for loc in self.locations.values():
            if loc.slug == slug:
                return loc
        return None

    def rules_for(self, location_id: int | None) -> tuple[Rule, ...]:
        configured = [r for loc, r in self.rules if loc is None or loc == location_id]
        return tuple(configured) if self.rules else DEFAULT_RULES

    def channels_for(self, location_id: int | None) -> tuple[AvailableChannel, ...]:
        return tuple(
            AvailableChannel(name=c.name, family=c.family, priority=c.priority)
            for c in sorted(self.channels.values(), key=lambda c: (c.priority, c.name))
            if c.location_id is None or c.location_id == location_id
        )


def build_tenant_config(snap: TenantSnapshot) -> TenantConfig:
    locations: dict[int, LocationConfig] = {}
    for row in snap.locations:
        settings = dict(row["settings"] or {})
        locations[row["id"]] = LocationConfig(
            id=row["id"],
            slug=row["slug"],
            location=Location(
                name=row["name"],
                timezone=row["timezone"],
                locale=row["locale"],
                currency=row["currency"],
                phone=row["phone"],
                address=row["address"],
                quiet_start=row["quiet_start"],
                quiet_end=row["quiet_end"],
            ),
            country=str(settings.get("country") or _country_from_locale(row["locale"])),
            settings=settings,
        )
    chans = {
        row["name"]: ChannelConfigRow(
            id=row["id"],
            name=row["name"],
            provider=row["provider"],
            family=ChannelFamily(row["family"]),
            location_id=row["location_id"],
            priority=row["priority"],
            settings=dict(row["settings"] or {}),
            secrets=row["secrets"],
        )
        for row in snap.channels
    }
    rules = tuple(
        (
            row["location_id"],
            Rule(
                trigger=Trigger(row["trigger"]),
                audience=row["audience"],
                fulfillment=Fulfillment(row["fulfillment"]) if row["fulfillment"] else None,
                channels=tuple(row["channels"] or ()),
                template=row["template"],
                delay_seconds=row["delay_seconds"],
                purpose=Purpose(row["purpose"]),
                expires_after_seconds=row["expires_after_seconds"],
                enabled=row["enabled"],
            ),
        )
        for row in snap.rules
    )
    overrides = {(t["name"], t["locale"], t["part"]): t["body"] for t in snap.templates}
    return TenantConfig(
        id=snap.id,
        slug=snap.slug,
        name=snap.name,
        locations=locations,
        channels=chans,
        rules=rules,
        templates=TemplateSet(overrides),
        loaded_at=time.monotonic(),
        has_suppressions=snap.has_suppressions,
    )


def _country_from_locale(locale: str) -> str:
    if "_" in locale or "-" in locale:
        return locale.replace("-", "_").split("_")[1].upper()
    return "US"


class TenantCache:
    """Tenant configuration, reloaded after ``ttl`` seconds (``orderbell apply`` in another
    process is seen within that time)."""

    def __init__(self, db: Database, *, ttl: float = 5.0) -> None:
        self._db = db
        self._ttl = ttl
        self._items: dict[int, TenantConfig] = {}
        self._lock = asyncio.Lock()

    async def get(self, tenant_id: int) -> TenantConfig:
        cfg = self._items.get(tenant_id)
        if cfg is not None and time.monotonic() - cfg.loaded_at < self._ttl:
            return cfg
        async with self._lock:
            cfg = self._items.get(tenant_id)
            if cfg is not None and time.monotonic() - cfg.loaded_at < self._ttl:
                return cfg
            async with self._db.read() as conn:
                snap = await store_setup.load_tenant(conn, tenant_id)
            if snap is None:
                raise ConfigError(f"tenant {tenant_id} does not exist")
            cfg = build_tenant_config(snap)
            self._items[tenant_id] = cfg
            return cfg

    def invalidate(self) -> None:
        self._items.clear()


class ChannelPool:
    """Adapters built once per configured channel and reused; rebuilt when its settings change."""

    def __init__(
        self,
        http: HttpClient,
        box: SecretBox,
        *,
        defaults: Callable[[str], Mapping[str, Any]] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._http = http
        self._box = box
        self._defaults = defaults or (lambda provider: {})
        #: tests may swap a provider class for a fake one
        self._overrides = dict(overrides or {})
        self._built: dict[tuple[int, str], tuple[Any, Channel]] = {}

    def get(self, tenant_id: int, row: ChannelConfigRow) -> Channel:
        fingerprint = (
            row.provider,
            json.dumps(row.settings, sort_keys=True, default=str),
            row.secrets,
        )
        hit = self._built.get((tenant_id, row.name))
        if hit is not None and hit[0] == fingerprint:
            return hit[1]
        settings: dict[str, Any] = dict(self._defaults(row.provider))
        settings.update(row.settings)
        if row.secrets:
            settings.update(self._box.decrypt_json(row.secrets))
        channel = channel_registry.build_channel(row.provider, settings, self._http)
        self._built[(tenant_id, row.name)] = (fingerprint, channel)
        return channel


def channel_rows_by_family(cfg: TenantConfig) -> Mapping[ChannelFamily, Sequence[str]]:
    out: dict[ChannelFamily, list[str]] = {}
    for c in cfg.channels.values():
        out.setdefault(c.family, []).append(c.name)
    return out
