"""The operator's commands as a person runs them: init, apply (twice), listings, send-test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from orderbell.config import Settings
from orderbell.store.database import Database
from orderbell.store.tables import channels, integrations, locations, rules, templates, tenants
from tests.e2e.conftest import config_env, write_config
from tests.e2e.proc import cli, env_for
from tests.fakes.twilio import FakeTwilio


async def _dump(data_dir: Path) -> list[list[tuple[object, ...]]]:
    db = Database(Settings(data_dir=data_dir).db_url)
    try:
        async with db.read() as conn:
            out = []
            for t in (tenants, locations, integrations, channels, rules, templates):
                rows = await conn.execute(sa.select(t).order_by(t.c.id))
                out.append([tuple(r) for r in rows])
            return out
    finally:
        await db.dispose()


def test_init_then_apply_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = env_for(data)
    path = tmp_path / "orderbell.yaml"
    assert "wrote" in cli(env, "init", str(path)).stdout
    again = cli(env, "init", str(path), check=False)
    assert again.returncode == 1 and "--force" in again.stderr
    assert "is valid" in cli(env, "apply", "--dry-run", str(path)).stdout
    first = cli(env, "apply", str(path)).stdout
    assert "tenant demo: created" in first
    before = asyncio.run(_dump(data))
    second = cli(env, "apply", str(path)).stdout
    assert "tenant demo: updated" in second
    assert asyncio.run(_dump(data)) == before


def test_listings_mask_secrets_and_send_test_reaches_the_provider(tmp_path: Path) -> None:
    with FakeTwilio() as twilio:
        data = tmp_path / "data"
        env = env_for(data, **config_env(twilio, None))
        config = write_config(tmp_path / "orderbell.yaml", twilio, None)
        cli(env, "apply", str(config))

        listing = cli(env, "channels").stdout
        assert "twilio_sms" in listing and "sendgrid" in listing and "outbox" in listing
        assert twilio.auth_token not in listing
        assert "****" in listing
        # where to point the provider's callbacks: the table may wrap it, so unwrap
        flat = "".join(line.strip(" │┃|") for line in listing.splitlines())
        assert "/v1/callbacks/twilio_sms/" in flat, listing

        sources = cli(env, "sources").stdout
        assert "generic" in sources and "/v1/webhooks/generic/" in sources

        sent = cli(
            env,
            "send-test",
            "--channel",
            "sms",
            "--to",
            "+12125550123",
            "--text",
            "Hello from the kitchen",
            "--tenant",
            "bistro",
        )
        assert "sent: provider id SM" in sent.stdout
        request = twilio.last
        assert request.fields["To"] == "+12125550123"
        assert request.fields["Body"] == "Hello from the kitchen"

        missing = cli(
            env, "send-test", "--channel", "fax", "--to", "x", "--tenant", "bistro", check=False
        )
        assert missing.returncode == 1 and "no channel 'fax'" in missing.stderr
        assert "Traceback" not in missing.stderr

        twilio.fail_next(
            1,
            400,
            body={
                "code": 21211,
                "status": 400,
                "message": "The 'To' number is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
            },
        )
        refused = cli(
            env,
            "send-test",
            "--channel",
            "sms",
            "--to",
            "+12125550123",
            "--tenant",
            "bistro",
            check=False,
        )
        assert refused.returncode == 1 and "21211" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_every_command_has_help(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data")
    top = cli(env, "--help").stdout
    for command in (
        "serve",
        "api",
        "worker",
        "db",
        "init",
        "apply",
        "keys",
        "outbox",
        "orders",
        "sources",
        "channels",
        "send-test",
    ):
        assert command in top
        cli(env, *command.split(), "--help")
    assert "orderbell" in cli(env, "--version").stdout
