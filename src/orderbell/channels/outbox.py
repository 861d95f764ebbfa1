"""The outbox: a channel that writes each message as one JSON line to a local file.

It is what Order Bell uses when no real provider is configured (for every guest family:
SMS, email, WhatsApp, ...), so a first run, a demo or a test sees exactly what would have
been sent, with ``orderbell outbox`` or ``read_outbox``. Nothing leaves the machine.

Each send is one ``write`` on a descriptor opened with ``O_APPEND``: lines from several
workers or processes never interleave. The file holds full recipient addresses by design
(it stands in for the provider), so it is created readable by its owner only.
"""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from pydantic import Field

from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError, TransientSendError

if TYPE_CHECKING:
    from orderbell.channels.http import HttpClient


class OutboxConfig(ChannelConfig):
    path: str = Field(min_length=1, description="JSONL file the messages are appended to")
    family: ChannelFamily = Field(
        default=ChannelFamily.SMS,
        description="the channel family this outbox stands in for (sms, email, ...)",
    )


_PERMANENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS})


class OutboxChannel:
    """Appends each message to a JSONL file instead of sending it.

    ``family`` is SMS on the class; an instance takes its configured ``family``, so the
    engine can stand one outbox in for each guest family (all may share one file).
    ``accepts_any_family`` tells the engine this provider fits every family.
    """

    provider: ClassVar[str] = "outbox"
    family: ClassVar[ChannelFamily] = ChannelFamily.SMS
    title: ClassVar[str] = "Local outbox (JSON lines file, nothing is sent)"
    docs_url: ClassVar[str] = "docs/channels/outbox.md"
    Config: ClassVar[type[OutboxConfig]] = OutboxConfig
    secret_fields: ClassVar[tuple[str, ...]] = ()
    max_body_chars: ClassVar[int | None] = None
    rate_limit_per_second: ClassVar[float | None] = None
    accepts_any_family: ClassVar[bool] = True

    def __init__(self, config: OutboxConfig, http: HttpClient | None = None) -> None:
        self.config = config
        self.path = Path(config.path)
        # An instance attribute shadows the class default: this outbox's family.
        self.family = config.family  # type: ignore[misc]
        self._dir_ready = False

    async def send(self, message: OutboundMessage) -> SendResult:
        line = orjson.dumps(
            {
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "message_id": message.message_id,
                "channel": str(self.family),
                "to": message.to,
                "subject": message.subject,
                "text": message.text,
                "html": message.html,
                "locale": message.locale,
                "metadata": dict(message.metadata),
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        # A small append to a local file does not block the loop for long: no thread hop.
        self._append(line)
        return SendResult(
            provider_message_id=f"outbox-{message.message_id}", provider_status="written"
        )

    def _append(self, line: bytes) -> None:
        try:
            if not self._dir_ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._dir_ready = True
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                written = os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            detail = f"cannot append to the outbox file {self.path.name}: {exc.strerror}"
            if exc.errno in _PERMANENT_ERRNOS:
                raise PermanentSendError(detail) from exc
            raise TransientSendError(detail) from exc
        if written != len(line):
            raise TransientSendError(f"short write to the outbox file {self.path.name}")


def read_outbox(path: str | os.PathLike[str], *, since: int = 0) -> list[dict[str, Any]]:
    """The messages in an outbox file, oldest first, from line number ``since`` (0-based).

    A missing file reads as empty. A line that is not JSON (say a write cut short by a
    crash) is skipped, but still counts, so ``since`` offsets stay stable.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    entries: list[dict[str, Any]] = []
    for index, line in enumerate(raw.splitlines()):
        if index < since or not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


__all__ = ["OutboxChannel", "OutboxConfig", "read_outbox"]
