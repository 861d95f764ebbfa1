"""What the CRM workflow sources (HubSpot, Zoho CRM) and the delivery sources share.

A CRM does not know about orders: a restaurant keeps orders as deals, tickets or custom
records and moves them through stages. ``CrmMapping`` is the part of a CRM source's
``Config`` that says which record field holds the stage (``status_field``), which stage
value means which of our statuses (``status_map``), and where the order id, number and
guest details are. ``record_update`` turns one record into one ``OrderUpdate``.

Field names are looked up three ways, so the same setting works for every body shape
the CRMs send: a top-level key (``"dealstage"``), a dotted path (``"deal.stage"``), and a
key inside ``properties`` (HubSpot's object JSON, where a property is either a plain
value or ``{"value": ..., "timestamp": ...}``).

``parse_when`` reads the timestamps these platforms send: epoch seconds or milliseconds
(as numbers or digit strings) and ISO 8601 text; a time without an offset is UTC.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from orderbell.domain.model import Fulfillment, GuestInfo, OrderStatus, OrderUpdate
from orderbell.errors import PayloadError
from orderbell.sources.base import SourceConfig

_MISSING = object()
#: epoch values above this are milliseconds (1e11 s is the year 5138)
_MS_THRESHOLD = 100_000_000_000
#: what the store keeps: external ids, order numbers, names, event ids
MAX_ORDER_ID, MAX_NUMBER, MAX_NAME, MAX_EVENT_ID = 128, 64, 200, 200


def norm(value: str) -> str:
    """How mapping keys and incoming values are compared: trimmed, case-folded."""
    return " ".join(value.split()).casefold()


def text(value: Any) -> str | None:
    """A field value as text; ``None`` for missing, null and blank values."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    out = str(value).strip()
    return out or None


def lookup(record: Mapping[str, Any], name: str) -> Any:
    """The value of field ``name`` in ``record`` (top level, dotted path, ``properties``)."""
    value: Any = record.get(name, _MISSING)
    if value is _MISSING and "." in name:
        value = record
        for part in name.split("."):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            else:
                value = _MISSING
                break
    if value is _MISSING:
        props = record.get("properties")
        value = props.get(name, _MISSING) if isinstance(props, Mapping) else _MISSING
    if isinstance(value, Mapping) and "value" in value:
        value = value["value"]
    return None if value is _MISSING else value


def parse_when(value: Any) -> datetime | None:
    """A timestamp in any form these platforms use, as an aware UTC datetime, or None."""
    if value is None or isinstance(value, bool):
        return None
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        raw = value.strip()
        if not raw:
            return None
        if raw.lstrip("-").isdigit():
            number = float(raw)
        else:
            try:
                when = datetime.fromisoformat(raw.replace(" ", "T", 1) if "T" not in raw else raw)
            except ValueError:
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return when.astimezone(UTC)
    if number is None:
        return None
    if abs(number) >= _MS_THRESHOLD:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def same_secret(given: str | bytes | None, expected: Iterable[str | bytes]) -> bool:
    """Constant-time check that ``given`` equals one of ``expected``."""
    if given is None:
        return False
    got = given.encode() if isinstance(given, str) else given
    ok = False
    for candidate in expected:
        want = candidate.encode() if isinstance(candidate, str) else candidate
        ok |= hmac.compare_digest(got, want)
    return ok


def body_digest(body: bytes) -> str:
    """A stable id for a delivery that carries none: the same body is the same event."""
    return hashlib.sha256(body).hexdigest()[:40]


def compose_name(first: str | None, last: str | None) -> str | None:
    joined = " ".join(p for p in (first, last) if p)
    return clip(joined, MAX_NAME) or None


def clip(value: str | None, limit: int) -> str | None:
    """``value`` cut to ``limit`` characters (the column it goes to)."""
    return value[:limit] if value else value


def event_key(*parts: str) -> str:
    """An event id made of ``parts``, hashed when it would not fit the store."""
    key = ":".join(parts)
    if len(key) <= MAX_EVENT_ID:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class CrmMapping(SourceConfig):
    """Which CRM field means what. Stage values are compared trimmed and case-folded."""

    status_field: str = Field(min_length=1, description="Field holding the stage/status")
    status_map: dict[str, OrderStatus] = Field(
        min_length=1, description="CRM value -> our status, e.g. {'closedwon': 'confirmed'}"
    )
    ignore_unmapped: bool = Field(
        default=True,
        description="Skip records whose status value is not in status_map (else: details only)",
    )
    order_id_field: str = Field(min_length=1)
    number_field: str | None = None
    name_field: str | None = None
    first_name_field: str | None = None
    last_name_field: str | None = None
    phone_field: str | None = None
    email_field: str | None = None
    locale_field: str | None = None
    fulfillment_field: str | None = None
    fulfillment_map: dict[str, Fulfillment] = Field(default_factory=dict)
    default_fulfillment: Fulfillment | None = None
    promised_at_field: str | None = None
    eta_field: str | None = None
    tracking_url_field: str | None = None
    note_field: str | None = None
    location_field: str | None = Field(
        default=None, description="Field holding one of the tenant's location slugs"
    )
    occurred_at_field: str | None = Field(
        default=None, description="When the status changed (default: when it was sent)"
    )
    event_id_field: str | None = Field(
        default=None,
        description="A value that changes with every change (e.g. modified time); "
        "default: a digest of the body, so retries of the same body are recognised",
    )

    @field_validator("status_map", "fulfillment_map", mode="before")
    @classmethod
    def _normalise_keys(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {norm(str(k)): v for k, v in value.items()}
        return value


def record_update(
    record: Mapping[str, Any],
    cfg: CrmMapping,
    *,
    body: bytes,
    index: int,
    received_at: datetime,
    id_fallbacks: tuple[str, ...] = (),
) -> OrderUpdate | None:
    """Record number ``index`` of ``body`` as an ``OrderUpdate``; ``None`` when its stage is
    not one of ours (and ``ignore_unmapped``)."""
    order_id = text(lookup(record, cfg.order_id_field))
    for name in id_fallbacks:
        order_id = order_id or text(lookup(record, name))
    if order_id is None:
        raise PayloadError(f"{cfg.order_id_field}: no order id in the record")
    if len(order_id) > MAX_ORDER_ID:
        raise PayloadError(
            f"{cfg.order_id_field}: the order id is longer than {MAX_ORDER_ID} characters"
        )

    raw_status = text(lookup(record, cfg.status_field))
    status = cfg.status_map.get(norm(raw_status)) if raw_status else None
    note = None
    if status is None:
        if cfg.ignore_unmapped:
            return None
        shown = (raw_status or "(empty)")[:80]
        note = f"{cfg.status_field} {shown!r} is not in status_map; details only"

    def field(name: str | None) -> str | None:
        return text(lookup(record, name)) if name else None

    guest_name = clip(field(cfg.name_field), MAX_NAME) or compose_name(
        field(cfg.first_name_field), field(cfg.last_name_field)
    )
    phone, email, locale = field(cfg.phone_field), field(cfg.email_field), field(cfg.locale_field)
    guest = (
        GuestInfo(name=guest_name, phone=phone, email=email, locale=locale)
        if (guest_name or phone or email)
        else None
    )
    fulfillment = cfg.default_fulfillment
    raw_fulfillment = field(cfg.fulfillment_field)
    if raw_fulfillment:
        key = norm(raw_fulfillment)
        fulfillment = cfg.fulfillment_map.get(key) or _fulfillment_word(key) or fulfillment
    occurred = parse_when(lookup(record, cfg.occurred_at_field)) if cfg.occurred_at_field else None
    return OrderUpdate(
        external_id=order_id,
        event_id=record_event_id(record, cfg, body, index, order_id),
        occurred_at=occurred or received_at,
        status=status,
        number=clip(field(cfg.number_field), MAX_NUMBER),
        fulfillment=fulfillment,
        guest=guest,
        location_ref=field(cfg.location_field),
        promised_at=parse_when(lookup(record, cfg.promised_at_field))
        if cfg.promised_at_field
        else None,
        eta=parse_when(lookup(record, cfg.eta_field)) if cfg.eta_field else None,
        tracking_url=field(cfg.tracking_url_field),
        note=note or field(cfg.note_field),
    )


def _fulfillment_word(value: str) -> Fulfillment | None:
    """Our own words (``pickup``, ``delivery``, ``dine_in``) work without a map."""
    try:
        return Fulfillment(value.replace(" ", "_").replace("-", "_"))
    except ValueError:
        return None


def record_event_id(
    record: Mapping[str, Any], cfg: CrmMapping, body: bytes, index: int, order_id: str
) -> str:
    """The event id of one record: the order id and ``event_id_field`` when that is set
    (an event id must never name two orders), else a digest of the body."""
    if cfg.event_id_field:
        value = text(lookup(record, cfg.event_id_field))
        if value:
            return event_key(order_id, value)
    digest = body_digest(body)
    return f"body:{digest}" if index == 0 else f"body:{digest}:{index}"


__all__ = [
    "MAX_EVENT_ID",
    "MAX_NAME",
    "MAX_NUMBER",
    "MAX_ORDER_ID",
    "CrmMapping",
    "body_digest",
    "clip",
    "compose_name",
    "event_key",
    "lookup",
    "norm",
    "parse_when",
    "record_event_id",
    "record_update",
    "same_secret",
    "text",
]
