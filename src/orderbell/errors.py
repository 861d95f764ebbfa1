"""Every exception Order Bell raises on purpose.

Foreign exceptions (aiohttp, SQLAlchemy, YAML, ...) are translated into these at the
boundary that meets them, so the engine and the entrypoints only ever see this tree::

    OrderBellError
    ├── ConfigError            bad settings or config file (file, line, field)
    ├── InputError             the caller sent something we refuse (HTTP 4xx)
    │   ├── PayloadError       malformed body, unknown status, missing field   -> 400/422
    │   ├── SignatureError     wrong/missing signature, stale timestamp        -> 401
    │   ├── AuthError          missing or bad API key                          -> 401
    │   ├── NotFoundError      unknown integration, order, ...                 -> 404
    │   ├── ConflictError      an event id / Idempotency-Key reused for another order -> 409
    │   └── PayloadTooLarge    body over the limit                             -> 413
    ├── SendError              a provider call did not succeed
    │   ├── TransientSendError worth retrying (timeout, reset, 429, 5xx); retry_after in s
    │   └── PermanentSendError retrying will not help (4xx, invalid number, ...)
    └── StoreError             database trouble
        └── LeaseLostError     a worker's claim on a message was fenced off

This module imports nothing from the package.
"""

from __future__ import annotations


class OrderBellError(Exception):
    """Base of every error raised on purpose by Order Bell."""


class ConfigError(OrderBellError):
    """Settings or a configuration file are wrong; the message says where."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.detail = message
        where = ""
        if file:
            where = file + (f":{line}" if line else "")
        if field:
            where = f"{where} {field}" if where else field
        super().__init__(f"{where}: {message}" if where else message)


class InputError(OrderBellError):
    """A caller sent input we refuse. Carries the HTTP status and a problem type."""

    status: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __init__(self, detail: str, *, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class PayloadError(InputError):
    status = 400
    title = "Malformed or invalid payload"
    type_slug = "invalid-payload"


class SignatureError(InputError):
    status = 401
    title = "Signature verification failed"
    type_slug = "bad-signature"


class AuthError(InputError):
    status = 401
    title = "Authentication required"
    type_slug = "unauthorized"


class NotFoundError(InputError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


class ConflictError(InputError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class PayloadTooLarge(InputError):
    status = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class SendError(OrderBellError):
    """A provider call failed. ``code`` is the provider's error code when it gave one.

    An adapter that recognises what the code says about the recipient sets
    ``recipient_opted_out`` (they told the provider STOP: Twilio 21610) or
    ``recipient_unreachable`` (the number cannot receive at all: Twilio 21211, 21614);
    the dispatcher then records the opt-out or marks the contact point unusable."""

    recipient_opted_out: bool = False
    recipient_unreachable: bool = False

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.http_status = http_status


class TransientSendError(SendError):
    """Worth retrying later; ``retry_after`` (seconds) when the provider said how long."""

    def __init__(
        self,
        detail: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(detail, code=code, http_status=http_status)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Retrying will not help: the request or the recipient is wrong."""


class StoreError(OrderBellError):
    """The database failed in a way the caller should hear about."""


class LeaseLostError(StoreError):
    """A worker tried to finish a message whose lease another worker now holds."""
