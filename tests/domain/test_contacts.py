"""Phone and email normalisation, and masks for logs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.contacts import mask_email, mask_phone, normalise_email, normalise_phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 (212) 555-0123", None, "+12125550123"),
        ("(212) 555-0123", "US", "+12125550123"),
        ("212.555.0123", "us", "+12125550123"),
        ("912 345 678", "ES", "+34912345678"),
        ("0034 912 345 678", "ES", "+34912345678"),
        ("  +44 20 7946 0958 ", None, "+442079460958"),
    ],
)
def test_normalise_phone(raw: str, region: str | None, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("", "US"),
        ("   ", "US"),
        ("hello", "US"),
        ("212 555 0123", None),  # no country code and no region
        ("+1 555 0123", None),  # too short
        ("+999 1234567", None),  # no such country code
    ],
)
def test_normalise_phone_invalid(raw: str, region: str | None) -> None:
    assert normalise_phone(raw, region) is None


def test_normalise_phone_none() -> None:
    assert normalise_phone(None, "US") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Juan@Example.COM ", "Juan@example.com"),
        ("maria.lopez+orders@mail.example.es", "maria.lopez+orders@mail.example.es"),
        ("Maria Lopez <maria@Example.com>", "maria@example.com"),
        ("mailto:maria@example.com", "maria@example.com"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
    ],
)
def test_normalise_email(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plainaddress",
        "@example.com",
        "juan@",
        "juan@localhost",
        "juan@@example.com",
        "ju an@example.com",
        ".juan@example.com",
        "juan.@example.com",
        "ju..an@example.com",
        "juan@example..com",
        "juan@-example.com",
        "juan@example.c",
        "juan@example.123",
        "a" * 65 + "@example.com",
        "juan(comment)@example.com",
    ],
)
def test_normalise_email_invalid(raw: str) -> None:
    assert normalise_email(raw) is None


def test_mask_phone_keeps_country_code_and_last_four() -> None:
    assert mask_phone("+12125550123") == "+1******0123"
    assert mask_phone("+34912345678") == "+34*****5678"


def test_mask_phone_odd_inputs() -> None:
    assert mask_phone(None) == ""
    assert mask_phone("") == ""
    assert mask_phone("123") == "***"
    assert mask_phone("5550123") == "***0123"


def test_mask_email() -> None:
    assert mask_email("juan@example.com") == "j***@example.com"
    assert mask_email("j@example.com") == "j***@example.com"
    assert mask_email("nope") == "***"
    assert mask_email(None) == ""


@given(st.from_regex(r"\+1[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True))
def test_mask_phone_never_shows_more_than_four_national_digits(phone: str) -> None:
    masked = mask_phone(phone)
    assert masked.startswith("+1")
    assert masked.endswith(phone[-4:])
    assert sum(ch.isdigit() for ch in masked) == 5
    assert len(masked) == len(phone)


@given(st.emails())
def test_normalise_email_is_idempotent(address: str) -> None:
    once = normalise_email(address)
    if once is not None:
        assert normalise_email(once) == once
        _, _, domain = once.rpartition("@")
        assert domain == domain.lower()
