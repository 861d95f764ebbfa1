"""SMS encoding and segment counting (3GPP TS 23.038 / 23.040).

A message is GSM-7 when every character is in the basic table or the extension table
(extension characters cost two septets: ESC plus a code). Any other character makes the
*whole* message UCS-2, counted in UTF-16 code units (an emoji outside the BMP is two).

One segment carries 160 septets or 70 UCS-2 units. Once a message needs more, each
segment carries a 6-byte concatenation header and 153 septets or 67 units; an ESC pair
(or a UTF-16 surrogate pair) is never split across two segments, so counting is done by
packing characters, not by dividing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: GSM 03.38 basic character set (ESC itself, 0x1B, is not a printable character).
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: each costs two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160
GSM7_MULTI = 153
UCS2_SINGLE = 70
UCS2_MULTI = 67

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a text goes over SMS.

    ``units`` is septets for GSM-7 and UTF-16 code units for UCS-2; ``non_gsm`` lists
    (once each, in order) the characters that forced UCS-2.
    """

    encoding: Encoding
    units: int
    segments: int
    non_gsm: tuple[str, ...] = ()


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _gsm_cost(ch: str) -> int:
    return 2 if ch in GSM7_EXTENSION else 1


def _ucs2_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _pack(costs: list[int], per_segment: int) -> int:
    """Segments needed when no character's units may straddle a boundary."""
    segments, used = 1, 0
    for cost in costs:
        if used + cost > per_segment:
            segments += 1
            used = 0
        used += cost
    return segments


def segment_info(text: str) -> SegmentInfo:
    """Encoding, units and segment count for ``text`` (an empty text is one segment)."""
    non_gsm = tuple(dict.fromkeys(ch for ch in text if not is_gsm7(ch)))
    if not non_gsm:
        costs = [_gsm_cost(ch) for ch in text]
        single, multi = GSM7_SINGLE, GSM7_MULTI
        encoding: Encoding = "GSM-7"
    else:
        costs = [_ucs2_cost(ch) for ch in text]
        single, multi = UCS2_SINGLE, UCS2_MULTI
        encoding = "UCS-2"
    units = sum(costs)
    segments = 1 if units <= single else _pack(costs, multi)
    return SegmentInfo(encoding=encoding, units=units, segments=segments, non_gsm=non_gsm)


#: Typographic characters with a GSM-7 stand-in.
_FRIENDLY: dict[int, str] = {
    **dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032`\u00b4\u02bc"), "'"),
    **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb"), '"'),
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-"),
    **dict.fromkeys(map(ord, "\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"), " "),
    **dict.fromkeys(map(ord, "\u200a\u202f\u205f\u3000\t"), " "),
    **dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), ""),
    ord("…"): "...",
    ord("•"): "-",
    ord("\u02c6"): "^",
    ord("\u02dc"): "~",
    ord("\u2028"): "\n",
    ord("\u2029"): "\n",
}

#: Accented letters outside GSM-7, mapped to their unaccented form (opt-in: lossy).
_ACCENTS: dict[int, str] = {
    ord(k): v
    for k, v in {
        "á": "a",
        "í": "i",
        "ó": "o",
        "ú": "u",
        "Á": "A",
        "Í": "I",
        "Ó": "O",
        "Ú": "U",
        "â": "a",
        "ê": "e",
        "î": "i",
        "ô": "o",
        "û": "u",
        "ã": "a",
        "õ": "o",
        "ë": "e",
        "ï": "i",
        "ç": "c",
        "È": "E",
        "À": "A",
        "Ì": "I",
        "Ò": "O",
        "Ù": "U",
    }.items()
}


def to_gsm_friendly(text: str, *, strip_accents: bool = False) -> str:
    """Replace smart quotes, dashes, ellipsis and odd spaces by their GSM-7 equivalents.

    With ``strip_accents``, accented letters missing from GSM-7 (``á í ó ú``, ...) lose
    their accent too; that changes spelling, so it is off by default.
    """
    text = text.translate(_FRIENDLY)
    if strip_accents:
        text = text.translate(_ACCENTS)
    return text
