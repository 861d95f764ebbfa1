"""Zoho CRM: a workflow rule's webhook action, authenticated with a shared secret.

A restaurant that keeps orders in Zoho CRM (often as Deals, moved through stages, or a
custom "Orders" module) adds a **webhook** to a workflow rule that fires when the stage
changes (Setup > Automation > Actions > Webhooks). Zoho CRM lets the webhook send

* **Form-Data** (``application/x-www-form-urlencoded``) parameters, each a key of the
  restaurant's choosing bound to a record field (a merge field), or
* a **Raw** body, e.g. JSON the restaurant writes with merge fields
  (``{"order_id": "${Deals.Deal Id}", "status": "${Deals.Stage}"}``),

and custom headers. Both bodies are read; the keys are mapped with ``CrmMapping``
(``status_field`` + ``status_map``, ``order_id_field``, guest fields).

Zoho CRM workflow webhooks are **not signed** (zoho.com/crm/help/automation/webhooks.html
describes URL, method, parameters and headers, and no signature; Zoho's signed webhooks,
``X-Zoho-Webhook-Signature``, belong to Zoho Payments). So the restaurant puts a long
random secret in a custom header of the webhook (``secret_header``, default
``X-Orderbell-Token``) or, when it cannot add headers, in a body parameter
(``secret_param``; the raw body is kept with the event history, so the header is
better); it is compared in constant time. There is no timestamp to check and
no event id: a retry of the same body is recognised by a digest of the body, or by
``event_id_field`` (e.g. the record's Modified Time) when the restaurant sends one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import orjson
from pydantic import Field

from orderbell.domain.model import OrderUpdate
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources._crm import CrmMapping, lookup, record_update, same_secret, text
from orderbell.sources.base import lower_headers

MAX_RECORDS = 200


def read_body(body: bytes, content_type: str) -> Any:
    """A Zoho webhook body: form parameters (a dict; the last of a repeated name wins)
    or JSON, by Content-Type, sniffed when the header says neither."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    stripped = body.lstrip()
    is_json = ctype == "application/json" or ctype.endswith("+json")
    if not is_json and ctype != "application/x-www-form-urlencoded":
        is_json = stripped[:1] in (b"{", b"[")
    if is_json:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise PayloadError("the form body is not UTF-8") from None
    if not pairs:
        raise PayloadError("the body holds no parameters")
    return dict(pairs)


class ZohoCrmSource:
    """Zoho CRM workflow webhooks (a stage or status field -> our status)."""

    name: ClassVar[str] = "zoho"
    title: ClassVar[str] = "Zoho CRM (workflow webhook)"
    docs_url: ClassVar[str] = "https://www.zoho.com/crm/help/automation/webhooks.html"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)
    needs_fetch: ClassVar[bool] = False

    class Config(CrmMapping):
        secret: str = Field(min_length=16, description="Shared secret sent by the webhook")
        secret_header: str | None = Field(
            default="X-Orderbell-Token", description="Custom header carrying the secret"
        )
        secret_param: str | None = Field(
            default=None, description="Body parameter carrying the secret (no header)"
        )
        status_field: str = "status"
        order_id_field: str = "order_id"
        number_field: str | None = "order_number"
        name_field: str | None = "customer_name"
        phone_field: str | None = "phone"
        email_field: str | None = "email"
        fulfillment_field: str | None = "fulfillment"

    def __init__(self, config: Config) -> None:
        self.config = config

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        cfg = self.config
        h = lower_headers(headers)
        given: str | None = None
        if cfg.secret_header:
            given = h.get(cfg.secret_header.lower())
            if given is not None:
                given = given.strip()
                if given[:7].lower() == "bearer ":
                    given = given[7:].strip()
        if given is None and cfg.secret_param:
            try:
                data = read_body(body, h.get("content-type", ""))
            except PayloadError:
                data = None
            if isinstance(data, Mapping):
                given = text(lookup(data, cfg.secret_param))
        if given is None:
            where = cfg.secret_header or cfg.secret_param
            raise SignatureError(f"missing {where} (the integration's shared secret)")
        if not same_secret(given, [cfg.secret]):
            raise SignatureError("the shared secret does not match")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        data = read_body(body, lower_headers(headers).get("content-type", ""))
        items = data if isinstance(data, list) else [data]
        if len(items) > MAX_RECORDS:
            raise PayloadError(f"more than {MAX_RECORDS} records in one request")
        received = datetime.now(UTC)
        updates = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise PayloadError(f"record {index} is not an object")
            update = record_update(item, self.config, body=body, index=index, received_at=received)
            if update is not None:
                updates.append(update)
        return sorted(updates, key=lambda u: u.occurred_at)
