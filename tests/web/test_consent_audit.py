"""Who changed consent: a provider's opt-out signal (Twilio error 21610 on a delivery
report) and the guest's preference page write audit rows, like keywords and staff do."""

from __future__ import annotations

import httpx

from orderbell.store import tables
from tests.engine.harness import App, rows
from tests.web.test_callbacks import client, post_status, sent_sms  # noqa: F401


async def test_provider_opt_out_is_audited(client: httpx.AsyncClient, app: App) -> None:  # noqa: F811
    _mid, sid, channel_id = await sent_sms(app)
    resp = await post_status(
        client,
        app,
        channel_id,
        {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "21610"},
    )
    assert resp.status_code in (200, 204)
    revoked = await rows(app.db, tables.consent_events, tables.consent_events.c.granted.is_(False))
    assert revoked and {e.source for e in revoked} == {"twilio_sms"}
    (audit,) = await rows(app.db, tables.audit_log, tables.audit_log.c.action == "consent.opt_out")
    assert audit.actor == "provider twilio_sms"
    assert audit.target == f"customer:{revoked[0].customer_id}" and "21610" in audit.detail


async def test_preference_page_opt_out_is_audited(app: App) -> None:
    await sent_sms(app)
    (order,) = await rows(app.db, tables.orders)
    from orderbell.engine.guest_page import GuestPageService

    page = GuestPageService(app.db, app.container.tenants, clock=app.clock)
    await page.opt_out(order.tracking_token, "followup", "form post")
    (audit,) = await rows(app.db, tables.audit_log, tables.audit_log.c.action == "consent.opt_out")
    assert (
        audit.actor == "guest (preference page)" and audit.target == f"customer:{order.customer_id}"
    )
