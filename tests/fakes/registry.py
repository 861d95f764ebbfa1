"""Every fake server, by the name ``python -m tests.fakes.serve NAME`` takes."""

from __future__ import annotations

from tests.fakes.echo import EchoFake
from tests.fakes.harness import FakeServer
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio

FAKES: dict[str, type[FakeServer]] = {
    "echo": EchoFake,
    "twilio": FakeTwilio,
    "sendgrid": FakeSendGrid,
}
