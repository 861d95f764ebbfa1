"""The one place that picks concrete parts: database, secret box, HTTP client, channels,
sources. Entrypoints call ``build(settings)``; tests pass their own clock or registries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orderbell.config import Settings
from orderbell.crypto import LinkSigner, SecretBox, load_or_create_key
from orderbell.engine.callbacks import CallbackService
from orderbell.engine.dispatch import Dispatcher, DispatchSettings
from orderbell.engine.followups import FollowupTimer
from orderbell.engine.inbound import InboundHandler
from orderbell.engine.inbox import InboxProcessor
from orderbell.engine.ingest import Ingestor, utcnow
from orderbell.engine.metrics import Metrics
from orderbell.engine.overrides import OverrideService
from orderbell.engine.privacy import PrivacyService
from orderbell.engine.service import OrderService
from orderbell.engine.tenants import ChannelPool, TenantCache
from orderbell.engine.throttle import Throttle
from orderbell.engine.webhooks import WebhookService
from orderbell.http import HttpClient
from orderbell.store.database import Database

log = logging.getLogger("orderbell")


@dataclass
class Container:
    settings: Settings
    db: Database
    box: SecretBox
    http: HttpClient
    metrics: Metrics
    tenants: TenantCache
    channels: ChannelPool
    ingestor: Ingestor
    webhooks: WebhookService
    orders: OrderService
    callbacks: CallbackService
    clock: Callable[[], datetime] = field(default=utcnow)
    throttle: Throttle = field(default_factory=Throttle)
    #: signs links in messages (one-click unsubscribe); derived from the secret key
    signer: LinkSigner | None = None
    #: staff actions on orders (resend, set status, mark delayed, cancel), audited
    overrides: OverrideService = field(init=False)
    #: data rights (export, erase, retention purge) and one-click unsubscribe
    privacy: PrivacyService = field(init=False)

    def __post_init__(self) -> None:
        self.overrides = OverrideService(self.db, self.ingestor, self.tenants, clock=self.clock)
        if self.signer is None:
            self.signer = LinkSigner(load_or_create_key(self.settings))
        self.privacy = PrivacyService(self.db, self.tenants, self.signer, clock=self.clock)

    async def run_background(self, stop: asyncio.Event, **dispatcher_args: Any) -> None:
        """What a worker process runs: the dispatcher, the inbox retries, the follow-up
        timer pass (late orders, incidents) and the retention purge, until ``stop``."""
        inbox = InboxProcessor(self.db, self.webhooks, clock=self.clock)
        timer = FollowupTimer(self.db, self.tenants, self.ingestor, clock=self.clock)
        await asyncio.gather(
            self.dispatcher(**dispatcher_args).run(stop),
            inbox.run(stop),
            timer.run(stop),
            self.privacy.run_retention(stop),
        )

    def dispatcher(self, **kwargs: Any) -> Dispatcher:
        s = self.settings
        return Dispatcher(
            self.db,
            self.tenants,
            self.channels,
            settings=DispatchSettings(
                batch_size=s.batch_size,
                concurrency=s.concurrency,
                lease_seconds=s.lease_seconds,
                poll_seconds=s.poll_seconds,
                public_url=s.public_url,
            ),
            clock=self.clock,
            metrics=self.metrics,
            **{"throttle": self.throttle, "signer": self.signer, **kwargs},
        )

    async def aclose(self) -> None:
        await self.throttle.aclose()
        await self.http.aclose()
        await self.db.dispose()


def build(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    sources: Mapping[str, Any] | None = None,
    cache_ttl: float = 5.0,
) -> Container:
    """Wire the parts together. Nothing connects until first used."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    key = load_or_create_key(settings)
    box = SecretBox(key)
    http = HttpClient()
    metrics = Metrics()
    tenants = TenantCache(db, ttl=cache_ttl)
    outbox_path = str(settings.outbox_path)

    def defaults(provider: str) -> Mapping[str, Any]:
        return {"path": outbox_path} if provider == "outbox" else {}

    channels = ChannelPool(http, box, defaults=defaults)
    signer = LinkSigner(key)
    ingestor = Ingestor(db, tenants, clock=clock, fingerprint=signer.fingerprint)
    webhooks = WebhookService(
        db, ingestor, box, metrics=metrics, clock=clock, sources=sources, ttl=cache_ttl, http=http
    )
    orders = OrderService(
        db, ingestor, metrics=metrics, clock=clock, public_url=settings.public_url
    )
    return Container(
        settings=settings,
        db=db,
        box=box,
        http=http,
        metrics=metrics,
        tenants=tenants,
        channels=channels,
        ingestor=ingestor,
        webhooks=webhooks,
        orders=orders,
        callbacks=CallbackService(
            db,
            tenants,
            channels,
            clock=clock,
            metrics=metrics,
            on_inbound=InboundHandler(
                db, tenants, channels, ingestor, clock=clock, public_url=settings.public_url
            ),
        ),
        clock=clock,
        throttle=Throttle(redis_url=settings.redis_url, clock=lambda: clock().timestamp()),
        signer=signer,
    )
