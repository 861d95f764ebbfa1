from __future__ import annotations

import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orderbell import crypto
from orderbell.config import Settings
from orderbell.crypto import SecretBox, generate_key, load_or_create_key
from orderbell.errors import ConfigError

SECRETS = {"auth_token": "tok_1234567890", "nested": {"a": [1, 2]}, "name": "Café ☕"}


def test_roundtrip() -> None:
    box = SecretBox(generate_key())
    token = box.encrypt_json(SECRETS)
    assert "tok_1234567890" not in token
    assert box.decrypt_json(token) == SECRETS


def test_each_encryption_differs() -> None:
    box = SecretBox(generate_key())
    assert box.encrypt_json(SECRETS) != box.encrypt_json(SECRETS)


def test_wrong_key_is_a_config_error_that_says_so() -> None:
    token = SecretBox(generate_key()).encrypt_json(SECRETS)
    with pytest.raises(ConfigError) as info:
        SecretBox(generate_key()).decrypt_json(token)
    assert str(info.value) == (
        "cannot decrypt stored secrets: ORDERBELL_SECRET_KEY differs from the one they were "
        "written with"
    )


@pytest.mark.parametrize("token", ["", "not a token", "gAAAAAB-garbage", "ünïcode"])
def test_garbage_token_is_a_config_error(token: str) -> None:
    with pytest.raises(ConfigError, match="cannot decrypt stored secrets"):
        SecretBox(generate_key()).decrypt_json(token)


@pytest.mark.parametrize("key", ["", " , ", "short", "x" * 44, generate_key()[:-2]])
def test_invalid_key_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="ORDERBELL_SECRET_KEY"):
        SecretBox(key)


def test_rotation_first_key_encrypts_all_keys_decrypt() -> None:
    old, new = generate_key(), generate_key()
    old_token = SecretBox(old).encrypt_json({"v": "old"})
    rotating = SecretBox(f"{new}, {old}")
    assert rotating.decrypt_json(old_token) == {"v": "old"}

    new_token = rotating.encrypt_json({"v": "new"})
    assert SecretBox(new).decrypt_json(new_token) == {"v": "new"}
    with pytest.raises(ConfigError):
        SecretBox(old).decrypt_json(new_token)

    resealed = rotating.rotate(old_token)
    assert SecretBox(new).decrypt_json(resealed) == {"v": "old"}


def test_rotation_names_the_bad_key() -> None:
    with pytest.raises(ConfigError, match="key 2 of 2 in ORDERBELL_SECRET_KEY"):
        SecretBox(f"{generate_key()},nope")


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "deep" / "data"
    settings = Settings(data_dir=data_dir)
    key = load_or_create_key(settings)
    path = data_dir / "secret.key"
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(settings) == key
    SecretBox(key)  # a usable key


def test_settings_key_wins_and_writes_nothing(tmp_path: Path) -> None:
    key = generate_key()
    assert load_or_create_key(Settings(data_dir=tmp_path, secret_key=key)) == key
    assert not (tmp_path / "secret.key").exists()


def test_settings_key_may_hold_several(tmp_path: Path) -> None:
    keys = f"{generate_key()},{generate_key()}"
    assert load_or_create_key(Settings(data_dir=tmp_path, secret_key=keys)) == keys


def test_invalid_settings_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid Fernet key"):
        load_or_create_key(Settings(data_dir=tmp_path, secret_key="hunter2"))


def test_invalid_key_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("hunter2\n")
    with pytest.raises(ConfigError, match="secret key file"):
        load_or_create_key(Settings(data_dir=tmp_path))


def test_empty_key_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "KEY_FILE_WAIT_SECONDS", 0.05)
    (tmp_path / "secret.key").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_or_create_key(Settings(data_dir=tmp_path))


def test_racing_processes_end_with_the_same_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    workers = 16
    barrier = threading.Barrier(workers)

    def start() -> str:
        barrier.wait()
        return load_or_create_key(settings)

    with ThreadPoolExecutor(workers) as pool:
        keys = list(pool.map(lambda _: start(), range(workers)))
    assert len(set(keys)) == 1
    assert (tmp_path / "data" / "secret.key").read_text().strip() == keys[0]
