"""People's side in a real browser: Playwright driving Debian's Chromium against a real
``orderbell serve`` process, with fake Twilio behind it.

- Staff sign in, see an order appear on the board when its webhook arrives, open it,
  press Resend and see the new message in the timeline.
- A guest opens the tracking link from their text, sees the status change live, and
  opts out; after that nothing more is sent.

The screenshots in ``docs/screenshots/`` (shown in the README) are taken here.
Skipped, with the reason, when Chromium or the Playwright package is missing
(``apt-get install chromium``; never ``playwright install``).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orderbell.sources.generic import sign
from tests.e2e.conftest import WEBHOOK_SECRET, config_env, write_config
from tests.e2e.proc import Server, cli, env_for, free_port, http
from tests.fakes.twilio import FakeTwilio

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
EMAIL, PASSWORD = "ana@bistro.example", "correct horse battery"

if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip(
        "Chromium is not installed (apt-get install chromium); browser tests skipped",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
)

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path, twilio: FakeTwilio) -> Iterator[dict[str, Any]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(
        tmp_path / "data",
        None,
        ORDERBELL_PUBLIC_URL=base,
        ORDERBELL_STAFF_PASSWORD=PASSWORD,
        **config_env(twilio, None),
    )
    config = write_config(tmp_path / "orderbell.yaml", twilio, None)
    cli(env, "db", "upgrade")
    cli(env, "apply", str(config))
    cli(env, "staff", "add", "--tenant", "bistro", "--email", EMAIL, "--role", "manager",
        "--name", "Ana Ruiz")  # fmt: skip
    key = cli(env, "keys", "create", "--tenant", "bistro").stdout.strip()
    server = Server(env, log=tmp_path / "server.log", port=port)
    try:
        server.wait_ready()
        yield {"server": server, "base": base, "key": key}
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def webhook(server: Server, data: dict[str, Any], msg_id: str) -> Any:
    raw = json.dumps({"type": "order.updated", "data": data}).encode()
    headers = sign(WEBHOOK_SECRET, msg_id, int(time.time()), raw)
    code, body = http(
        "POST", f"{server.base}/v1/webhooks/generic/bistro-pos", raw=raw, headers=headers
    )
    assert code == 200, body
    return body


def _at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def seed_board(server: Server) -> None:
    """A believable lunch rush (guests without contact points: nobody is texted)."""
    orders = [  # number, guest, status, fulfilment, placed (min ago), due (min from now)
        ("1036", "Emma Rossi", "completed", "pickup", 48, -20),
        ("1038", "Sofia Martínez", "in_kitchen", "pickup", 45, -25),  # late
        ("1039", "James Chen", "in_kitchen", "delivery", 14, 18),
        ("1040", "Aisha Bello", "ready", "pickup", 21, 2),
        ("1041", "Lukas Weber", "out_for_delivery", "delivery", 33, 9),
        ("1043", "Noah Kim", "placed", "dine_in", 1, 30),
        ("1044", "Priya Patel", "in_kitchen", "dine_in", 9, 12),
    ]
    for number, name, status, fulfillment, placed, due in orders:
        webhook(
            server,
            {
                "order_id": f"S-{number}",
                "number": number,
                "status": status,
                "fulfillment": fulfillment,
                "occurred_at": _at(-placed),
                "promised_at": _at(due),
                "guest": {"name": name},
            },
            f"seed-{number}",
        )


def watch_console(page: Any) -> list[str]:
    """Errors the page logs (a CSP violation, a script error) end up here."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def shot(page: Any, name: str, *, full: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=full)
    assert (SHOTS / name).stat().st_size > 5000


def test_staff_see_a_new_order_live_and_resend_from_its_page(
    served: dict[str, Any], browser: Any, twilio: FakeTwilio
) -> None:
    server: Server = served["server"]
    seed_board(server)
    context = browser.new_context(viewport={"width": 1366, "height": 820})
    page = context.new_page()
    errors = watch_console(page)
    page.goto(f"{server.base}/dashboard")
    assert "/dashboard/sign-in" in page.url
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/dashboard/locations/\d+$"))
    sync_api.expect(page.locator('[data-order="1038"]')).to_have_class(re.compile(r"\blate\b"))

    # the webhook arrives while the board is open: the card appears without a reload
    page.evaluate("window.__noReload = true")
    assert page.locator('[data-order="1042"]').count() == 0
    webhook(
        server,
        {
            "order_id": "W-1042",
            "number": "1042",
            "status": "confirmed",
            "fulfillment": "pickup",
            "promised_at": _at(15),
            "guest": {"name": "Maria García", "phone": "+1 212 555 0123", "preferences": ["sms"]},
        },
        "evt-1042-confirmed",
    )
    card = page.locator('[data-order="1042"]')
    sync_api.expect(card).to_be_visible(timeout=10_000)
    assert page.evaluate("window.__noReload") is True
    sync_api.expect(page.locator('[data-column="new"]')).to_contain_text("Maria García")
    twilio.wait_for_sync(1, timeout=10)
    shot(page, "board.png", full=False)

    card.click()
    page.wait_for_url(re.compile(r"/dashboard/orders/\d+$"))
    sync_api.expect(page.locator('li[data-trigger="confirmed"][data-state="sent"]')).to_be_visible(
        timeout=10_000
    )
    page.get_by_role("button", name="Resend").click()
    sync_api.expect(page.get_by_text("Resend queued")).to_be_visible()
    resent = page.locator('li[data-trigger="resend"]')
    sync_api.expect(resent).to_be_visible()
    sync_api.expect(page.locator('li[data-trigger="resend"][data-state="sent"]')).to_be_visible(
        timeout=10_000
    )  # the timeline follows the worker without a reload
    sync_api.expect(resent).to_contain_text("requested by Ana Ruiz")
    got = twilio.wait_for_sync(2, timeout=10)
    assert got[1].fields["To"] == "+12125550123" and "1042" in got[1].fields["Body"]
    page.locator("details").first.evaluate("d => d.open = true")
    shot(page, "order.png")
    assert errors == []
    context.close()


def test_guest_follows_the_order_live_then_opts_out(
    served: dict[str, Any], browser: Any, twilio: FakeTwilio
) -> None:
    server: Server = served["server"]
    order = {
        "order_id": "W-2077",
        "number": "2077",
        "fulfillment": "pickup",
        "promised_at": _at(20),
        "eta": _at(20),
        "guest": {"name": "Maria García", "phone": "+1 212 555 0123", "preferences": ["sms"]},
    }
    webhook(server, {**order, "status": "confirmed"}, "evt-2077-1")
    (text,) = twilio.wait_for_sync(1, timeout=10)
    link = re.search(r"https?://\S+/t/[\w-]+", text.fields["Body"])
    assert link, text.fields["Body"]

    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    errors = watch_console(page)
    page.goto(link.group(0))
    assert page.locator("html").get_attribute("lang") == "en"
    sync_api.expect(page.locator("#status-text")).to_have_text("confirmed")
    page.evaluate("window.__noReload = true")

    webhook(server, {**order, "status": "in_kitchen"}, "evt-2077-2")
    sync_api.expect(page.locator("#status-text")).to_have_text("being prepared", timeout=5_000)
    assert page.evaluate("window.__noReload") is True  # pushed, not reloaded
    shot(page, "tracking.png")

    page.get_by_role("button", name="Stop all messages").click()
    sync_api.expect(page.get_by_text("we will not send you any more messages")).to_be_visible()
    assert errors == []
    context.close()

    # ready would text a pickup guest; after the opt-out nothing more is sent
    webhook(server, {**order, "status": "ready"}, "evt-2077-3")
    time.sleep(2.5)
    assert len(twilio.requests) == 1, [r.fields for r in twilio.requests]
    code, tl = http(
        "GET",
        f"{server.base}/v1/orders/2077",
        headers={"Authorization": f"Bearer {served['key']}"},
    )
    assert code == 200, tl
    ready = [m for m in tl["messages"] if m["trigger"] == "ready"]
    assert ready and ready[0]["state"] == "skipped" and ready[0]["skip_reason"] == "opted_out"
