"""Loading configuration into the store (``orderbell apply``), the first-run demo tenant,
and the small operator actions that need configured channels (``send-test``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from orderbell.channels.base import OutboundMessage, SendResult, mask_secrets
from orderbell.channels.registry import CHANNELS
from orderbell.config import Settings
from orderbell.crypto import SecretBox
from orderbell.engine.configfile import ConfigFile, TenantSpec, load_config, sample_config
from orderbell.engine.service import OrderService
from orderbell.engine.tenants import ChannelPool, TenantCache
from orderbell.errors import ConfigError, NotFoundError
from orderbell.store import setup
from orderbell.store.database import Database


class Container(Protocol):
    """What these actions use of the wired application (``bootstrap.Container`` has it);
    named here so the engine never imports the layer that assembles it."""

    @property
    def db(self) -> Database: ...

    @property
    def tenants(self) -> TenantCache: ...

    @property
    def channels(self) -> ChannelPool: ...

    @property
    def orders(self) -> OrderService: ...

    @property
    def box(self) -> SecretBox: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


@dataclass
class ApplyReport:
    tenants: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return self.tenants or ["nothing to apply"]


async def apply_config(container: Container, cfg: ConfigFile) -> ApplyReport:
    """Upsert everything in ``cfg`` in one transaction. Applying the same file twice
    leaves the database as it was."""
    report = ApplyReport()
    now = container.clock()
    async with container.db.transaction() as conn:
        for t in cfg.tenants:
            report.tenants.append(await _apply_tenant(conn, container, t, now))
    container.tenants.invalidate()
    return report


async def _apply_tenant(conn: Any, container: Container, t: TenantSpec, now: Any) -> str:
    box = container.box
    tenant_id, created = await setup.upsert_tenant(
        conn, t.slug, t.name, now, retention_days=t.retention_days
    )
    loc_ids: dict[str, int] = {}
    for loc in t.locations:
        loc_ids[loc.slug] = await setup.upsert_location(
            conn,
            tenant_id,
            loc.slug,
            {
                "name": loc.name,
                "timezone": loc.timezone,
                "locale": loc.locale,
                "currency": loc.currency,
                "phone": loc.phone,
                "address": loc.address,
                "quiet_start": loc.quiet_hours.start,
                "quiet_end": loc.quiet_hours.end,
                "settings": loc.stored_settings(),
            },
            now,
        )
    for integ in t.integrations:
        secrets = dict(integ.secrets)
        old = await setup.sealed_secrets(conn, "integrations", key=integ.id)
        await setup.upsert_integration(
            conn,
            integ.id,
            {
                "tenant_id": tenant_id,
                "location_id": loc_ids.get(integ.location) if integ.location else None,
                "source": integ.source,
                "settings": {
                    **_plain(integ.settings, secrets),
                    **({"_orders_of": integ.orders_of} if integ.orders_of else {}),
                },
                "secrets": _seal(box, secrets, old),
                "enabled": integ.enabled,
            },
            now,
        )
    for ch in t.channels:
        secrets = dict(ch.secrets)
        old = await setup.sealed_secrets(conn, "channels", tenant_id=tenant_id, name=ch.name)
        await setup.upsert_channel(
            conn,
            tenant_id,
            ch.name,
            {
                "location_id": loc_ids.get(ch.location) if ch.location else None,
                "provider": ch.provider,
                "family": str(ch.family or CHANNELS[ch.provider].family),
                "priority": ch.priority,
                "settings": _plain(ch.settings, secrets),
                "secrets": _seal(box, secrets, old),
                "enabled": ch.enabled,
            },
            now,
        )
    await setup.disable_channels_except(conn, tenant_id, [c.name for c in t.channels])
    rules = t.rules or []
    await setup.replace_rules(
        conn,
        tenant_id,
        [
            {
                "location_id": loc_ids.get(r.location) if r.location else None,
                "position": i,
                "trigger": r.trigger.value,
                "fulfillment": r.fulfillment.value if r.fulfillment else None,
                "audience": r.audience,
                "channels": list(r.channels),
                "template": r.template,
                "delay_seconds": r.delay,
                "expires_after_seconds": r.expires_after,
                "purpose": r.purpose.value,
                "enabled": r.enabled,
            }
            for i, r in enumerate(rules)
        ],
    )
    await setup.replace_templates(
        conn,
        tenant_id,
        [
            {"name": tpl.name, "locale": tpl.locale, "part": part, "body": body}
            for tpl in t.templates
            for part, body in tpl.parts().items()
        ],
    )
    verb = "created" if created else "updated"
    return (
        f"tenant {t.slug}: {verb}; {len(t.locations)} location(s), "
        f"{len(t.integrations)} integration(s), {len(t.channels)} channel(s), "
        f"{len(rules) if t.rules is not None else 'default'} rule(s), "
        f"{sum(len(x.parts()) for x in t.templates)} template part(s)"
    )


def _seal(box: SecretBox, secrets: dict[str, Any], old: str | None) -> str | None:
    """Encrypt ``secrets``, keeping the stored token when it already holds the same values
    (Fernet tokens differ on every encryption, and re-applying should change nothing)."""
    if not secrets:
        return None
    if old:
        try:
            if box.decrypt_json(old) == secrets:
                return old
        except ConfigError:
            pass
    return box.encrypt_json(secrets)


def _plain(settings: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """Settings without the values that are stored sealed."""
    return {k: v for k, v in settings.items() if k not in secrets}


@dataclass(frozen=True)
class Demo:
    api_key: str
    key_file: Path
    config_file: Path


async def ensure_demo(container: Container) -> Demo | None:
    """On an empty database: write and apply the sample config, create an API key."""
    async with container.db.read() as conn:
        if await setup.tenant_ids(conn):
            return None
    data_dir = container.settings.data_dir
    config_file = data_dir / "orderbell.yaml"
    if not config_file.exists():
        config_file.write_text(sample_config())
    await apply_config(container, load_config(config_file))
    key = await container.orders.create_api_key("demo", "first run")
    key_file = data_dir / "demo-api-key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return Demo(key, key_file, config_file)


async def configured_channels(container: Container) -> list[dict[str, Any]]:
    async with container.db.read() as conn:
        rows = await setup.list_channels(conn)
    out = []
    for r in rows:
        cls = CHANNELS.get(r["provider"])
        settings = dict(r["settings"] or {})
        sealed: tuple[str, ...] = ()
        if r["secrets"]:
            secret_values = container.box.decrypt_json(r["secrets"])
            settings.update(secret_values)
            sealed = tuple(secret_values)
        hidden = tuple(cls.secret_fields if cls else ()) + sealed
        takes_callbacks = cls is not None and hasattr(cls, "verify_callback")
        callback_url = (
            f"{container.settings.public_url}/v1/callbacks/{r['provider']}/{r['id']}"
            if takes_callbacks
            else None
        )
        out.append(
            {
                **dict(r),
                "settings": mask_secrets(settings, hidden),
                "secrets": None,
                "callback_url": callback_url,
            }
        )
    return out


async def send_test_message(
    container: Container, tenant_slug: str, channel_name: str, to: str, text: str
) -> SendResult:
    async with container.db.read() as conn:
        tenant_id = await setup.find_tenant(conn, tenant_slug)
    if tenant_id is None:
        raise NotFoundError(f"no tenant {tenant_slug!r}")
    cfg = await container.tenants.get(tenant_id)
    row = cfg.channels.get(channel_name)
    if row is None:
        known = ", ".join(sorted(cfg.channels)) or "none"
        raise ConfigError(
            f"no channel {channel_name!r} for tenant {tenant_slug} (configured: {known})"
        )
    adapter = container.channels.get(tenant_id, row)
    return await adapter.send(
        OutboundMessage(
            message_id=0,
            idempotency_key=f"send-test:{os.getpid()}",
            to=to,
            text=text,
            subject="Order Bell test message",
            html=None,
        )
    )
