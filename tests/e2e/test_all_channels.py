"""One real server, every kind of channel: guests by SMS, email, WhatsApp, Messenger,
Viber, voice and push; staff by Slack, Teams, Google Chat, Discord and PagerDuty. Each
request is checked by its provider's strict loopback fake."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.channels.cases import (
    DISCORD,
    GOOGLE_CHAT,
    MESSENGER,
    PAGERDUTY,
    PUSHER_BEAMS,
    SENDGRID,
    SLACK,
    TEAMS,
    TWILIO,
    TWILIO_VOICE,
    VIBER,
    WHATSAPP,
    ProviderCase,
)
from tests.e2e.proc import Server, cli, env_for, http

GUEST_CHANNELS: dict[str, ProviderCase] = {
    "sms": TWILIO,
    "email": SENDGRID,
    "whatsapp": WHATSAPP,
    "messenger": MESSENGER,
    "viber": VIBER,
    "voice": TWILIO_VOICE,
    "push": PUSHER_BEAMS,
}
STAFF_CHANNELS: dict[str, ProviderCase] = {
    "slack": SLACK,
    "teams": TEAMS,
    "google_chat": GOOGLE_CHAT,
    "discord": DISCORD,
    "pagerduty": PAGERDUTY,
}

#: each guest prefers one family and gives the contact point it needs
GUESTS: dict[str, dict[str, Any]] = {
    "sms": {"phone": "+12125550101"},
    "email": {"email": "ana@example.com"},
    "whatsapp": {"whatsapp": "+12125550102"},
    "messenger": {"messenger_psid": "6284012345678901"},
    "viber": {"viber_id": "01234567890A="},
    "voice": {"phone": "+12125550103"},
    "push": {"push_user": "guest-7f3a"},
}


def _config(fakes: dict[str, Any]) -> str:
    channels = []
    for name, case in {**GUEST_CHANNELS, **STAFF_CHANNELS}.items():
        settings = case.settings(fakes[name])
        if name == "whatsapp":
            settings["templates"] = {"confirmed": "order_update"}
        channels.append(
            {
                "name": name,
                "provider": case.provider,
                "settings": settings,
                **({"family": "sms"} if name == "sms" else {}),
            }
        )
    rules = [{"trigger": "confirmed"}] + [
        {"trigger": "confirmed", "fulfillment": "delivery", "audience": f"staff:{name}"}
        for name in STAFF_CHANNELS
    ]
    doc = {
        "version": 1,
        "tenants": [
            {
                "slug": "bistro",
                "name": "Bistro",
                "locations": [
                    {
                        "slug": "main",
                        "name": "Bistro Main",
                        "timezone": "America/New_York",
                        "phone": "+12125550100",
                        "address": "1 Main St, New York",
                    }
                ],
                "channels": channels,
                "rules": rules,
            }
        ],
    }
    return json.dumps(doc)  # JSON is YAML


def test_one_order_per_guest_channel_and_staff_alerts(tmp_path: Path) -> None:
    with ExitStack() as stack:
        fakes = {
            name: stack.enter_context(case.fake())
            for name, case in {**GUEST_CHANNELS, **STAFF_CHANNELS}.items()
        }
        # The restaurant's approved UTILITY template: name, order, location, time or status.
        fakes["whatsapp"].templates["order_update"] = (frozenset({"en_US", "en"}), 4)
        env = env_for(tmp_path / "data")
        config = tmp_path / "orderbell.yaml"
        config.write_text(_config(fakes))
        cli(env, "apply", str(config))
        key = cli(env, "keys", "create", "--tenant", "bistro").stdout.strip()
        server = Server(env, log=tmp_path / "server.log")
        try:
            server.wait_ready()
            auth = {"Authorization": f"Bearer {key}"}
            for i, family in enumerate(GUEST_CHANNELS):
                order = {
                    "order_id": f"o-{family}",
                    "number": str(3000 + i),
                    "status": "confirmed",
                    "fulfillment": "delivery" if family == "sms" else "pickup",
                    "guest": {"name": "Ana", "preferences": [family], **GUESTS[family]},
                }
                code, body = http("POST", f"{server.base}/v1/orders", order, auth)
                assert code == 201, body
            deadline = time.monotonic() + 20
            pending = set(fakes)
            while pending and time.monotonic() < deadline:
                pending = {n for n in pending if not fakes[n].requests}
                time.sleep(0.1)
            if pending:
                _, listing = http("GET", f"{server.base}/v1/messages?limit=100", headers=auth)
                why = [(m["channel"], m["state"], m["why"]) for m in listing["items"]]
                raise AssertionError(f"no request reached {sorted(pending)}: {why}")
            time.sleep(0.5)
            for i, family in enumerate(GUEST_CHANNELS):
                (request,) = fakes[family].requests
                assert request.status is not None and request.status < 300, (family, request.body)
                # voice speaks the number digit by digit ("3 0 0 5"): check the greeting there
                expected = b"Hello+Ana" if family == "voice" else str(3000 + i).encode()
                assert expected in request.body, (family, request.body)
            for name in STAFF_CHANNELS:
                (request,) = fakes[name].requests
                assert request.status is not None and request.status < 300, (name, request.body)
                assert b"3000" in request.body, (name, request.body)
            code, messages = http("GET", f"{server.base}/v1/messages?limit=100", headers=auth)
            states = {m["channel"]: m["state"] for m in messages["items"]}
            assert set(states) == set(GUEST_CHANNELS) | set(STAFF_CHANNELS)
            assert set(states.values()) == {"sent"}, states
        finally:
            server.stop()
