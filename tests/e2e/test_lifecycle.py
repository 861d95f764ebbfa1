"""An order through every status, through the real server, to fake Twilio and SendGrid.

Exactly one message per notifying status reaches a provider with the rendered text;
replayed webhooks and older statuses send nothing more, and the timeline says why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from orderbell.sources.generic import sign
from tests.e2e.conftest import WEBHOOK_SECRET, config_env, write_config
from tests.e2e.proc import Server, cli, env_for, http
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio

DELIVERY_FLOW = ["placed", "confirmed", "in_kitchen", "ready", "out_for_delivery", "completed"]
PICKUP_FLOW = ["confirmed", "in_kitchen", "ready", "cancelled"]
DELIVERY_NOTIFY = ["confirmed", "out_for_delivery", "completed"]
PICKUP_NOTIFY = ["confirmed", "ready", "cancelled"]


def webhook(
    server: Server, data: dict[str, Any], msg_id: str, *, at: int | None = None
) -> tuple[int, Any]:
    raw = json.dumps({"type": "order.updated", "data": data}).encode()
    headers = sign(WEBHOOK_SECRET, msg_id, at or int(time.time()), raw)
    return http("POST", f"{server.base}/v1/webhooks/generic/bistro-pos", raw=raw, headers=headers)


def settle(fake: FakeTwilio | FakeSendGrid, count: int, quiet: float = 0.6) -> list[Any]:
    """Wait until ``count`` requests arrived, then make sure no more come."""
    got = fake.wait_for_sync(count, timeout=10)
    time.sleep(quiet)
    assert len(fake.requests) == count, [r.fields for r in fake.requests]
    return got


def test_every_status_notifies_once_and_replays_send_nothing(
    tmp_path: Path, database_url: str | None, twilio: FakeTwilio, sendgrid: FakeSendGrid
) -> None:
    env = env_for(tmp_path / "data", database_url, **config_env(twilio, sendgrid))
    config = write_config(tmp_path / "orderbell.yaml", twilio, sendgrid)
    cli(env, "db", "upgrade")
    cli(env, "apply", str(config))
    key = cli(env, "keys", "create", "--tenant", "bistro").stdout.strip()
    server = Server(env, log=tmp_path / "server.log")
    try:
        server.wait_ready()
        delivery_guest = {"name": "Maria", "phone": "+1 212 555 0123", "preferences": ["sms"]}
        pickup_guest = {"name": "Tom", "email": "Tom@Example.com", "preferences": ["email"]}
        sent_webhooks = []
        # Statuses come minutes apart in a kitchen: wait for each message before the next
        # status (a newer status would otherwise rightly supersede an unsent older one).
        for i, status in enumerate(DELIVERY_FLOW):
            data = {
                "order_id": "D-1",
                "number": "1042",
                "status": status,
                "fulfillment": "delivery",
                "guest": delivery_guest,
                "tracking_url": "https://couriers.example/t/abc",
            }
            code, body = webhook(server, data, f"evt-d-{i}")
            assert code == 200, body
            sent_webhooks.append((data, f"evt-d-{i}"))
            twilio.wait_for_sync(
                DELIVERY_NOTIFY.index(status) + 1 if status in DELIVERY_NOTIFY else 0
            )
        for i, status in enumerate(PICKUP_FLOW):
            data = {
                "order_id": "P-7",
                "number": "2077",
                "status": status,
                "fulfillment": "pickup",
                "guest": pickup_guest,
            }
            code, body = webhook(server, data, f"evt-p-{i}")
            assert code == 200, body
            sent_webhooks.append((data, f"evt-p-{i}"))
            sendgrid.wait_for_sync(
                PICKUP_NOTIFY.index(status) + 1 if status in PICKUP_NOTIFY else 0
            )

        # Delivery: confirmed, out_for_delivery, completed. Pickup: confirmed, ready, cancelled.
        sms = settle(twilio, 3)
        mails = settle(sendgrid, 3)
        texts = [r.fields["Body"] for r in sms]
        assert all(r.fields["To"] == "+12125550123" for r in sms)
        assert "1042" in texts[0] and "Maria" in texts[0]
        assert any(
            "on its way" in t.lower() or "out for delivery" in t.lower() for t in texts[1:2]
        ), texts
        subjects = [m.fields["subject"] for m in mails]
        assert all("2077" in s for s in subjects), subjects
        assert mails[0].fields["personalizations"][0]["to"] == [{"email": "Tom@example.com"}]
        assert (
            "ready" in mails[1].fields["subject"].lower()
            or "ready" in json.dumps(mails[1].fields["content"]).lower()
        )
        assert "cancel" in mails[2].fields["subject"].lower()

        # Replaying every webhook, and an older status as a new event, send nothing more.
        for data, msg_id in sent_webhooks:
            code, body = webhook(server, data, msg_id)
            assert code == 200 and body["results"][0]["outcome"] == "duplicate", body
        code, body = webhook(server, {"order_id": "D-1", "status": "in_kitchen"}, "evt-late")
        assert code == 200 and body["results"][0]["outcome"] == "stale"
        time.sleep(0.8)
        assert len(twilio.requests) == 3 and len(sendgrid.requests) == 3

        # The timeline shows both, with the reason, and why each message went.
        auth = {"Authorization": f"Bearer {key}"}
        code, tl = http("GET", f"{server.base}/v1/orders/1042", headers=auth)
        assert code == 200, tl
        outcomes = [e["outcome"] for e in tl["events"]]
        assert outcomes.count("duplicate") == len(DELIVERY_FLOW)
        assert "stale" in outcomes
        stale = next(e for e in tl["events"] if e["outcome"] == "stale")
        assert "not moved back" in stale["note"]
        assert tl["order"]["status"] == "completed"
        sent = [m for m in tl["messages"] if m["state"] == "sent"]
        assert [m["trigger"] for m in sent] == ["confirmed", "out_for_delivery", "completed"]
        assert all(
            m["attempts_detail"] and m["attempts_detail"][0]["outcome"] == "sent" for m in sent
        )
        assert all(m["provider_message_id"].startswith("SM") for m in sent)
        assert all(m["why"] for m in tl["messages"])

        # The CLI shows the same timeline.
        shown = cli(env, "orders", "show", "1042").stdout
        assert "duplicate" in shown and "stale" in shown and "out_for_delivery" in shown
    finally:
        server.stop()
