"""Process settings, read from the environment once by an entrypoint and passed down.

Nothing reads the environment at import time. ``Settings.from_env()`` is called by the
CLI; tests build ``Settings(...)`` directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from orderbell.errors import ConfigError

DEFAULT_DATA_DIR = "orderbell-data"


@dataclass(frozen=True)
class Settings:
    #: where the SQLite file, the generated secret key and the outbox live
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR))
    #: SQLAlchemy URL; default a SQLite file in ``data_dir``
    database_url: str | None = None
    #: Fernet key for secrets at rest; default generated once into ``data_dir``
    secret_key: str | None = None
    #: the URL the world reaches this service at (tracking links, provider callbacks)
    public_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    port: int = 8080
    #: worker: how many messages to claim at once and to have in flight
    batch_size: int = 100
    concurrency: int = 64
    lease_seconds: int = 60
    poll_seconds: float = 1.0
    max_body_bytes: int = 1024 * 1024
    #: Redis URL: rate limits shared by every worker process (in-process without it)
    redis_url: str | None = None
    log_level: str = "info"
    log_json: bool = False

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'orderbell.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.jsonl"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def listening(self, host: str | None, port: int | None) -> Settings:
        """These settings on another address; a public URL that was only the default
        (``ORDERBELL_PUBLIC_URL`` unset) follows it, so links and callbacks stay right."""
        host, port = host or self.host, port or self.port
        derived = self.public_url == local_url(self.host, self.port)
        public_url = local_url(host, port) if derived else self.public_url
        return replace(self, host=host, port=port, public_url=public_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        kwargs: dict[str, object] = {}
        if v := env.get("ORDERBELL_DATA_DIR"):
            kwargs["data_dir"] = Path(v)
        if v := env.get("ORDERBELL_DATABASE_URL"):
            kwargs["database_url"] = normalise_db_url(v)
        if v := env.get("ORDERBELL_SECRET_KEY"):
            kwargs["secret_key"] = v
        if v := env.get("ORDERBELL_PUBLIC_URL"):
            kwargs["public_url"] = v.rstrip("/")
        if v := env.get("ORDERBELL_REDIS_URL"):
            kwargs["redis_url"] = v
        if v := env.get("ORDERBELL_HOST"):
            kwargs["host"] = v
        for name, key, conv in (
            ("ORDERBELL_PORT", "port", int),
            ("ORDERBELL_BATCH_SIZE", "batch_size", int),
            ("ORDERBELL_CONCURRENCY", "concurrency", int),
            ("ORDERBELL_LEASE_SECONDS", "lease_seconds", int),
            ("ORDERBELL_POLL_SECONDS", "poll_seconds", float),
        ):
            if v := env.get(name):
                try:
                    kwargs[key] = conv(v)
                except ValueError:
                    raise ConfigError(f"{name} must be a number, not {v!r}") from None
        if "public_url" not in kwargs:  # unset: where this process listens, seen locally
            kwargs["public_url"] = local_url(
                str(kwargs.get("host", cls.host)),
                int(kwargs.get("port", cls.port)),  # type: ignore[call-overload]
            )
        if v := env.get("ORDERBELL_LOG_LEVEL"):
            kwargs["log_level"] = v.lower()
        if env.get("ORDERBELL_LOG_JSON", "").lower() in ("1", "true", "yes"):
            kwargs["log_json"] = True
        return cls(**kwargs)  # type: ignore[arg-type]


def local_url(host: str, port: int) -> str:
    """``http://host:port``, with 127.0.0.1 for a listen-everywhere address."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 (compared, not bound)
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def normalise_db_url(url: str) -> str:
    """Accept the URLs people write and turn them into async SQLAlchemy URLs."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError(
        f"ORDERBELL_DATABASE_URL must be a sqlite:/// or postgresql:// URL, not {url.split(':')[0]!r}"
    )
