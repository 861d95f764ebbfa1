"""Secrets at rest: channel credentials and integration secrets, sealed with Fernet.

``ORDERBELL_SECRET_KEY`` holds one Fernet key, or several separated by commas to rotate
keys: the first seals new values, every one of them opens old ones. When it is unset, a
key is generated once into ``<data_dir>/secret.key`` (mode 0600) and read from there.

This module imports only ``orderbell.config`` and ``orderbell.errors``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from orderbell.config import Settings
from orderbell.errors import ConfigError

KEY_FILE_NAME = "secret.key"
#: how long a reader waits for a racing process to finish writing a new key file
KEY_FILE_WAIT_SECONDS = 5.0

_WRONG_KEY = (
    "cannot decrypt stored secrets: ORDERBELL_SECRET_KEY differs from the one they were "
    "written with"
)
_HOW_TO_MAKE_A_KEY = (
    "a Fernet key is 32 random bytes in url-safe base64 (44 characters); make one with: "
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def generate_key() -> str:
    """A fresh Fernet key as text."""
    return Fernet.generate_key().decode("ascii")


def split_keys(key: str, *, origin: str = "ORDERBELL_SECRET_KEY") -> list[str]:
    """The keys in a comma-separated key string, each checked to be a Fernet key."""
    keys = [part.strip() for part in key.split(",") if part.strip()]
    if not keys:
        raise ConfigError(f"{origin} is empty; {_HOW_TO_MAKE_A_KEY}")
    for number, one in enumerate(keys, start=1):
        try:
            Fernet(one)
        except (ValueError, TypeError):
            which = f"key {number} of {len(keys)} in {origin}" if len(keys) > 1 else origin
            raise ConfigError(f"{which} is not a valid Fernet key; {_HOW_TO_MAKE_A_KEY}") from None
    return keys


class SecretBox:
    """Seals and opens JSON objects of secrets.

    ``key`` is one Fernet key or several comma-separated ones (newest first).
    """

    def __init__(self, key: str) -> None:
        keys = split_keys(key)
        self._fernet = MultiFernet([Fernet(one) for one in keys])

    def encrypt_json(self, obj: dict[str, Any]) -> str:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return self._fernet.encrypt(data).decode("ascii")

    def decrypt_json(self, token: str) -> dict[str, Any]:
        try:
            data = self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise ConfigError(_WRONG_KEY) from None
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ConfigError("stored secrets are not a JSON object")
        return value

    def rotate(self, token: str) -> str:
        """``token`` re-sealed with the first (newest) key, for key rotation."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError):
            raise ConfigError(_WRONG_KEY) from None


def derive_key(key: str, purpose: str) -> bytes:
    """A 32-byte HMAC key for ``purpose`` derived from one Fernet key (never the key itself)."""
    return hashlib.sha256(f"orderbell {purpose}\0".encode() + key.strip().encode()).digest()


class LinkSigner:
    """Signed, expiring tokens for links in messages (e.g. one-click unsubscribe).

    A token is ``base64url(fields joined by '.') + '.' + base64url(HMAC-SHA256[:16])``; the
    MAC key is derived from the secret key (the first signs; every key verifies, so links
    survive key rotation). Fields are short strings without dots.
    """

    def __init__(self, key: str, purpose: str = "links v1") -> None:
        self._keys = [derive_key(one, purpose) for one in split_keys(key)]

    def _mac(self, key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, payload, hashlib.sha256).digest()[:16]

    def sign(self, *fields: str) -> str:
        payload = ".".join(fields).encode()
        return f"{_b64(payload)}.{_b64(self._mac(self._keys[0], payload))}"

    def verify(self, token: str) -> list[str] | None:
        """The fields of a genuine token, or None for a forged or malformed one."""
        head, _, tail = token.partition(".")
        try:
            payload, sent = _unb64(head), _unb64(tail)
        except ValueError:
            return None
        if not any(hmac.compare_digest(self._mac(k, payload), sent) for k in self._keys):
            return None
        return payload.decode().split(".")

    def fingerprint(self, value: str) -> str:
        """A keyed hash of ``value`` (64 hex digits): matches the same value later without
        keeping it (the suppression list of erased guests who had opted out)."""
        return hmac.new(
            self._keys[0], b"suppression\0" + value.encode(), hashlib.sha256
        ).hexdigest()

    def pseudonym(self, value: str) -> str:
        """A stable keyed hash of ``value`` (8 hex digits) for "erased-..." pseudonyms."""
        return hmac.new(self._keys[0], b"pseudonym\0" + value.encode(), hashlib.sha256).hexdigest()[
            :8
        ]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or len(text) > 400:
        raise ValueError("bad token")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad token") from exc


def load_or_create_key(settings: Settings) -> str:
    """The secret key to use: ``settings.secret_key``, else the key file, else a new one.

    A new key is written to ``<data_dir>/secret.key`` with mode 0600. The file is created
    with ``O_CREAT | O_EXCL``, so when two processes start at once exactly one writes it
    and both end up with the same key.
    """
    if settings.secret_key:
        split_keys(settings.secret_key)
        return settings.secret_key
    path = Path(settings.data_dir) / KEY_FILE_NAME
    if path.exists():
        return _read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)  # another process won the race
    try:
        os.write(fd, (key + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def _read_key_file(path: Path) -> str:
    """Read a key file, waiting briefly if another process has created it but not written it."""
    deadline = time.monotonic() + KEY_FILE_WAIT_SECONDS
    while True:
        try:
            text = path.read_text(encoding="ascii").strip()
        except UnicodeDecodeError:
            text = "\0"
        except OSError as exc:
            raise ConfigError(f"cannot read the secret key file {path}: {exc.strerror}") from None
        if text or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    if not text:
        raise ConfigError(
            f"the secret key file {path} is empty; delete it or set ORDERBELL_SECRET_KEY"
        )
    split_keys(text, origin=f"the secret key file {path}")
    return text
