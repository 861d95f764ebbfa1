"""The outbox channel: one JSON line per message, safe with several writers."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from orderbell.channels.base import Channel, OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.outbox import OutboxChannel, OutboxConfig, read_outbox
from orderbell.channels.registry import build_channel
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError


def message(i: int = 1, **kw: object) -> OutboundMessage:
    values: dict[str, object] = {
        "message_id": i,
        "idempotency_key": f"k{i}",
        "to": "+15558675310",
        "text": f"Order {i} is ready",
        "metadata": {"order_id": str(100 + i)},
    }
    values.update(kw)
    return OutboundMessage(**values)  # type: ignore[arg-type]


async def test_send_appends_a_line_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "outbox.jsonl"
    channel = build_channel("outbox", {"path": str(path)}, HttpClient())
    assert isinstance(channel, Channel)

    first = await channel.send(message(1, subject="Hi", html="<p>Hi</p>", locale="fr"))
    await channel.send(message(2))

    assert first.provider_message_id == "outbox-1"
    entries = read_outbox(path)
    assert [e["message_id"] for e in entries] == [1, 2]
    assert entries[0] == {
        "at": entries[0]["at"],
        "message_id": 1,
        "channel": "sms",
        "to": "+15558675310",
        "subject": "Hi",
        "text": "Order 1 is ready",
        "html": "<p>Hi</p>",
        "locale": "fr",
        "metadata": {"order_id": "101"},
    }
    assert entries[0]["at"].endswith("+00:00")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_outbox(path, since=1) == entries[1:]


async def test_family_comes_from_config(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    email = OutboxChannel(OutboxConfig(path=str(path), family=ChannelFamily.EMAIL))
    sms = OutboxChannel(OutboxConfig(path=str(path)))
    assert OutboxChannel.family is ChannelFamily.SMS
    assert email.family is ChannelFamily.EMAIL
    assert sms.family is ChannelFamily.SMS
    assert OutboxChannel.accepts_any_family

    await email.send(message(1, to="guest@example.com", subject="Ready"))
    await sms.send(message(2))
    assert [e["channel"] for e in read_outbox(path)] == ["email", "sms"]


def test_read_outbox_tolerates_missing_file_and_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    assert read_outbox(path) == []
    path.write_bytes(b'{"message_id": 1}\n{"message_id": 2, "te\n\n[1]\n{"message_id": 3}\n')
    assert read_outbox(path) == [{"message_id": 1}, {"message_id": 3}]
    assert read_outbox(path, since=3) == [{"message_id": 3}]


async def test_concurrent_sends_in_one_loop(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    channel = OutboxChannel(OutboxConfig(path=str(path)))
    await asyncio.gather(*(channel.send(message(i)) for i in range(200)))
    assert sorted(e["message_id"] for e in read_outbox(path)) == list(range(200))


WRITER = """
import asyncio, sys
from orderbell.channels.base import OutboundMessage
from orderbell.channels.outbox import OutboxChannel, OutboxConfig

async def main(path, writer, count):
    channel = OutboxChannel(OutboxConfig(path=path))
    body = chr(ord("a") + writer) * 20000
    for i in range(count):
        await channel.send(OutboundMessage(
            message_id=writer * 100000 + i, idempotency_key="k", to="+15558675310", text=body))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def test_concurrent_processes_do_not_interleave(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    writers, count = 4, 150
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(count)])
        for w in range(writers)
    ]
    assert all(p.wait(60) == 0 for p in procs)

    lines = path.read_bytes().splitlines()
    assert len(lines) == writers * count
    for line in lines:
        entry = orjson.loads(line)  # every line is whole JSON
        writer = entry["message_id"] // 100000
        assert entry["text"] == chr(ord("a") + writer) * 20000


async def test_unwritable_path_is_permanent(tmp_path: Path) -> None:
    channel = OutboxChannel(OutboxConfig(path=str(tmp_path)))  # a directory
    with pytest.raises(PermanentSendError, match="outbox file"):
        await channel.send(message())


def test_config_requires_a_path() -> None:
    with pytest.raises(ValueError):
        OutboxConfig.model_validate({})
    assert os.fspath(OutboxChannel(OutboxConfig(path="x.jsonl")).path) == "x.jsonl"
