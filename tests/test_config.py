"""Settings from the environment: the public URL follows the listening address unless set."""

from __future__ import annotations

import pytest

from orderbell.config import Settings, local_url
from orderbell.errors import ConfigError


def test_unset_public_url_is_where_the_process_listens() -> None:
    assert Settings.from_env({}).public_url == "http://127.0.0.1:8080"
    s = Settings.from_env({"ORDERBELL_PORT": "18099"})
    assert (s.port, s.public_url) == (18099, "http://127.0.0.1:18099")
    everywhere = Settings.from_env({"ORDERBELL_HOST": "0.0.0.0", "ORDERBELL_PORT": "9000"})
    assert everywhere.public_url == "http://127.0.0.1:9000"


def test_command_line_address_moves_a_default_public_url_but_not_a_set_one() -> None:
    moved = Settings.from_env({}).listening(None, 9001)
    assert (moved.port, moved.public_url) == (9001, "http://127.0.0.1:9001")
    kept = Settings.from_env({"ORDERBELL_PUBLIC_URL": "https://bell.example/"}).listening(
        "0.0.0.0", 9001
    )
    assert (kept.host, kept.port, kept.public_url) == ("0.0.0.0", 9001, "https://bell.example")
    assert Settings.from_env({}).listening(None, None) == Settings.from_env({})


def test_ipv6_host_and_bad_numbers() -> None:
    assert local_url("::1", 80) == "http://[::1]:80"
    with pytest.raises(ConfigError, match="ORDERBELL_PORT must be a number"):
        Settings.from_env({"ORDERBELL_PORT": "eighty"})
