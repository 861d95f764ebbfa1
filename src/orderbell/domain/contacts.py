"""Contact points: normalise what sources send, and mask what logs show.

Phones become E.164 through :mod:`phonenumbers`; emails get a syntax check only (no DNS,
no network). Masks keep just enough to tell two contacts apart in a log line.
"""

from __future__ import annotations

import re

import phonenumbers

#: Characters allowed in an unquoted local part (RFC 5322 atext, plus dots between atoms).
_LOCAL_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$")
_DOMAIN_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_ANGLE = re.compile(r"<([^<>]*)>\s*$")


def normalise_phone(raw: str | None, default_region: str | None = None) -> str | None:
    """``raw`` as E.164 (``+12125550123``), or ``None`` when it is not a valid number.

    ``default_region`` (ISO 3166 alpha-2, e.g. ``"US"``) reads numbers written without a
    country code; without it only international numbers (``+...``) are accepted.
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    region = default_region.upper() if default_region else None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalise_domain(domain: str) -> str | None:
    domain = domain.rstrip(".").lower()
    if not domain:
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253:
        return None
    if not all(_DOMAIN_LABEL.match(label) for label in labels):
        return None
    tld = labels[-1]
    if not (tld.isalpha() and len(tld) >= 2) and not tld.startswith("xn--"):
        return None
    return domain if domain.isascii() else ascii_domain


def normalise_email(raw: str | None) -> str | None:
    """A trimmed address with a lower-cased domain, or ``None`` if it does not look valid.

    Accepts ``Name <addr>`` and ``mailto:addr``. The local part keeps its case (it is,
    strictly, case-sensitive). Internationalised domains come back in their ASCII form.
    """
    if raw is None:
        return None
    text = raw.strip()
    match = _ANGLE.search(text)
    if match:
        text = match.group(1).strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    if not text or any(ch.isspace() for ch in text) or text.count("@") != 1:
        return None
    local, _, domain = text.partition("@")
    if not local or len(local) > 64:
        return None
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    if not all(_LOCAL_ATOM.match(atom) for atom in local.split(".")):
        return None
    norm_domain = _normalise_domain(domain)
    if norm_domain is None:
        return None
    address = f"{local}@{norm_domain}"
    return address if len(address) <= 254 else None


def mask_phone(value: str | None) -> str:
    """``+12125550123`` -> ``+1******0123``: country code and last four digits only."""
    if not value:
        return ""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) <= 4:
        return "*" * len(digits)
    prefix = ""
    if value.strip().startswith("+"):
        try:
            country = str(phonenumbers.parse(value, None).country_code)
        except phonenumbers.NumberParseException:
            country = ""
        if country and digits.startswith(country) and len(digits) - len(country) > 4:
            prefix = "+" + country
            digits = digits[len(country) :]
        else:
            prefix = "+"
    return prefix + "*" * (len(digits) - 4) + digits[-4:]


def mask_email(value: str | None) -> str:
    """``juan@example.com`` -> ``j***@example.com`` (the length of the name is hidden)."""
    if not value:
        return ""
    local, at, domain = value.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"
