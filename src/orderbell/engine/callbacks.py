"""Provider callbacks: delivery reports and inbound messages.

``POST /v1/callbacks/{provider}/{channel_id}``: the channel's adapter verifies the raw
request (a forged callback changes nothing) and parses it; here reports move messages to
delivered, read, undelivered or failed (never backwards), hard bounces and unreachable
numbers mark the contact point unusable, and a provider's opt-out signal revokes consent.
Inbound messages are handed to the inbound handler (keywords, inquiries).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderbell.channels.base import Callback, CallbackReply, CallbackRequest, InboundMessage
from orderbell.domain.model import Purpose
from orderbell.engine.metrics import Metrics
from orderbell.engine.tenants import ChannelPool, TenantCache
from orderbell.errors import InputError, NotFoundError
from orderbell.store import reports as store
from orderbell.store.database import Database

log = logging.getLogger("orderbell.callbacks")

InboundHandler = Callable[[int, str, InboundMessage], Awaitable[None]]


@dataclass(frozen=True)
class _Bound:
    tenant_id: int
    name: str
    provider: str


@dataclass(frozen=True)
class CallbackOutcome:
    reply: CallbackReply
    applied: int = 0
    ignored: int = 0
    inbound: int = 0


class CallbackService:
    def __init__(
        self,
        db: Database,
        tenants: TenantCache,
        channels: ChannelPool,
        *,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
        on_inbound: InboundHandler | None = None,
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._channels = channels
        self._clock = clock
        self._metrics = metrics
        self.on_inbound = on_inbound

    async def handle(
        self,
        provider: str,
        channel_id: str,
        *,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        query: Mapping[str, str],
    ) -> CallbackOutcome:
        now = self._clock()
        try:
            adapter, row = await self._adapter(provider, channel_id)
            request = CallbackRequest(
                method=method,
                url=url,
                body=body,
                headers={k.lower(): v for k, v in headers.items()},
                query=query,
                now=now,
            )
            adapter.verify_callback(request)
            parsed: Callback = adapter.parse_callback(request)
        except InputError as exc:
            if self._metrics:
                self._metrics.reject(f"callback:{type(exc).__name__}")
            raise
        applied = ignored = 0
        if parsed.reports:
            async with self._db.transaction() as conn:
                for report in parsed.reports:
                    msg = await store.find_message(
                        conn,
                        tenant_id=row.tenant_id,
                        channel=row.name,
                        provider_message_id=report.provider_message_id,
                        message_id=report.message_id,
                    )
                    if msg is None:
                        ignored += 1
                        if report.contact_unusable and report.recipient:
                            await store.mark_unusable(
                                conn,
                                row.tenant_id,
                                report.recipient.lower(),
                                f"{report.raw_status} {report.error_code or ''} {now:%Y-%m-%d}".strip(),
                            )
                        continue
                    detail = f"{provider} reports {report.raw_status}" + (
                        f" ({report.error_code}: {report.error})"
                        if report.error_code
                        else f" ({report.error})"
                        if report.error
                        else ""
                    )
                    if await store.move(conn, msg["id"], report.status, now, detail):
                        applied += 1
                    else:
                        ignored += 1
                    if report.contact_unusable and msg["recipient"]:
                        n = await store.mark_unusable(
                            conn,
                            row.tenant_id,
                            msg["recipient"],
                            f"{report.raw_status} {report.error_code or ''} {now:%Y-%m-%d}".strip(),
                        )
                        if n:
                            log.info("contact point of message %d marked unusable", msg["id"])
                    if report.opted_out and msg["customer_id"] is not None and msg["family"]:
                        await store.provider_opt_out(
                            conn,
                            tenant_id=row.tenant_id,
                            customer_id=msg["customer_id"],
                            family=msg["family"],
                            purposes=tuple(p.value for p in Purpose),
                            provider=provider,
                            detail=detail,
                            now=now,
                        )
        for message in parsed.inbound:
            if self.on_inbound is not None:
                await self.on_inbound(row.tenant_id, row.name, message)
            else:
                log.info("inbound message on %s ignored (no inbound handler)", row.name)
        return CallbackOutcome(
            reply=parsed.reply or CallbackReply(200),
            applied=applied,
            ignored=ignored,
            inbound=len(parsed.inbound),
        )

    async def _adapter(self, provider: str, channel_id: str) -> tuple[Any, Any]:
        if not channel_id.isdigit():
            raise NotFoundError(f"no {provider} channel {channel_id!r}")
        async with self._db.read() as conn:
            raw = await store.channel_by_id(conn, int(channel_id))
        if raw is None or raw["provider"] != provider or not raw["enabled"]:
            raise NotFoundError(f"no {provider} channel {channel_id!r}")
        cfg = await self._tenants.get(raw["tenant_id"])
        row = cfg.channels.get(raw["name"])
        if row is None:
            raise NotFoundError(f"no {provider} channel {channel_id!r}")
        adapter = self._channels.get(cfg.id, row)
        row = _Bound(cfg.id, row.name, row.provider)
        if not hasattr(adapter, "verify_callback") or not hasattr(adapter, "parse_callback"):
            raise NotFoundError(f"{provider} sends no callbacks Order Bell understands")
        return adapter, row
