#!/usr/bin/env python
"""Two per-message costs in dispatch: SMS segment counting and the location phone format.

``orderbell.domain.sms.segment_info`` checks every character with ``is_gsm7`` (an
``all()`` over two sets, per character); ``orderbell.domain.templates._display_phone``
parses, validates and formats the location's phone with phonenumbers for every message.
This times both on a typical confirmation text, next to a set-based check and an
``lru_cache``.

    .venv/bin/python benchmarks/experiments/micro_domain.py
"""

from __future__ import annotations

import functools
import timeit

from orderbell.domain import sms, templates

TEXT = (
    "Hi Guest 123, your order #O4711 at Bistro Downtown is confirmed. We will tell you when "
    "it is ready. Track it: http://127.0.0.1:8080/t/AbCdEfGhIjKlMnOpQrStUvWxYz012345 "
    "Questions? Call +1 212-555-0100"
)
ALL = frozenset(sms.GSM7_BASIC) | frozenset(sms.GSM7_EXTENSION)
N = 2000


def set_based(text: str) -> int | None:
    if ALL.issuperset(text):
        return sum(2 if ch in sms.GSM7_EXTENSION else 1 for ch in text)
    return None


def per_call(fn: object) -> float:
    return timeit.timeit(fn, number=N) / N * 1e6  # type: ignore[arg-type]


print(f"text: {len(TEXT)} characters")
print(f"sms.segment_info: {per_call(lambda: sms.segment_info(TEXT)):.0f} us/call")
print(
    f"  a frozenset superset check, then the unit count: {per_call(lambda: set_based(TEXT)):.0f} us/call"
)
print(
    f"templates._display_phone: {per_call(lambda: templates._display_phone('+12125550100')):.0f} us/call"
)
cached = functools.lru_cache(maxsize=256)(templates._display_phone)
print(f"  with functools.lru_cache: {per_call(lambda: cached('+12125550100')):.2f} us/call")
