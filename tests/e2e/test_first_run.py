"""A new user's first minutes: `orderbell serve` on a fresh data dir, no credentials."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.proc import Server, cli, env_for, http


def test_fresh_serve_shows_ready_text_in_outbox_within_a_second(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = env_for(data)
    server = Server(env, log=tmp_path / "serve.log")
    try:
        server.wait_ready()
        key_file = data / "demo-api-key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        assert key in server.output()  # printed once on first run
        auth = {"Authorization": f"Bearer {key}"}
        order = {
            "order_id": "web-1",
            "number": "1042",
            "status": "confirmed",
            "fulfillment": "pickup",
            "guest": {"name": "Maria", "phone": "+1 (212) 555-0123"},
        }
        code, created = http("POST", f"{server.base}/v1/orders", order, auth)
        assert code == 201, created
        moved_at = time.monotonic()
        code, moved = http(
            "POST",
            f"{server.base}/v1/orders/{created['order_id']}/events",
            {"status": "ready"},
            auth,
        )
        assert code == 200 and moved["outcome"] == "applied", moved

        outbox = data / "outbox.jsonl"
        ready = None
        while time.monotonic() - moved_at < 1.0 and ready is None:
            if outbox.exists():
                lines = [json.loads(x) for x in outbox.read_text().splitlines() if x.strip()]
                ready = next((e for e in lines if "ready" in e["text"].lower()), None)
            time.sleep(0.02)
        assert ready is not None, f"no 'ready' text in the outbox within 1 s:\n{server.output()}"
        assert ready["to"] == "+12125550123"
        assert "1042" in ready["text"] and "Maria" in ready["text"]

        shown = cli(env, "outbox", "--json").stdout.splitlines()
        texts = [json.loads(x)["text"] for x in shown]
        assert len(texts) == 2 and any("ready" in t.lower() for t in texts)
        pretty = cli(env, "outbox").stdout
        assert "1042" in pretty and "+12125550123" in pretty
    finally:
        server.stop()

    # A second start finds the tenant and does not make another key.
    server = Server(env, log=tmp_path / "serve2.log")
    try:
        server.wait_ready()
        assert "First run" not in server.output()
    finally:
        server.stop()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ntenants:\n  - slug: Bad Slug\n    name: x\n")
    proc = cli(env, "apply", str(bad), check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "bad.yaml:3" in proc.stderr and "slug" in proc.stderr
    proc = cli(env, "orders", "show", "nope", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "orderbell db upgrade" in proc.stderr
    cli(env, "db", "upgrade")
    proc = cli(env, "orders", "show", "nope", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no order" in proc.stderr
    proc = cli(env_for(tmp_path / "d2", "mysql://x"), "db", "upgrade", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
