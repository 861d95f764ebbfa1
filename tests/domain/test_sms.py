"""SMS encoding and segment counting (compliance.md section 1.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentInfo,
    is_gsm7,
    segment_info,
    to_gsm_friendly,
)


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_plain_boundaries(length: int, segments: int) -> None:
    info = segment_info("a" * length)
    assert info == SegmentInfo("GSM-7", length, segments)


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_boundaries(length: int, segments: int) -> None:
    info = segment_info("ж" * length)
    assert info.encoding == "UCS-2"
    assert info.units == length
    assert info.segments == segments


def test_euro_costs_two_septets() -> None:
    assert segment_info("€") == SegmentInfo("GSM-7", 2, 1)
    assert segment_info("€" * 80) == SegmentInfo("GSM-7", 160, 1)
    assert segment_info("€" * 80 + "a").segments == 2


@pytest.mark.parametrize("char", sorted(GSM7_EXTENSION))
def test_every_extension_char_costs_two(char: str) -> None:
    assert segment_info(f"a{char}b").units == 4


def test_emoji_switches_to_ucs2_and_counts_two_units() -> None:
    info = segment_info("Ready! 🍕")
    assert info.encoding == "UCS-2"
    assert info.units == 9
    assert info.non_gsm == ("🍕",)


def test_one_non_gsm_char_makes_the_whole_message_ucs2() -> None:
    text = "a" * 69 + "á"
    assert segment_info(text) == SegmentInfo("UCS-2", 70, 1, ("á",))
    assert segment_info("a" * 70 + "á").segments == 2


def test_escape_pair_is_not_split_across_segments() -> None:
    # 152 + 2 + 152 = 306 septets would fit two segments by division, but the euro
    # cannot start at septet 153: the first segment closes at 152.
    text = "a" * 152 + "€" + "a" * 152
    info = segment_info(text)
    assert info.units == 306
    assert info.segments == 3


def test_escape_pair_fitting_exactly() -> None:
    text = "a" * 151 + "€" + "a" * 153
    assert segment_info(text).segments == 2


def test_surrogate_pair_is_not_split_across_segments() -> None:
    text = "ж" * 66 + "🍕" + "ж" * 66  # 66 + 2 + 66 = 134 units
    info = segment_info(text)
    assert info.units == 134
    assert info.segments == 3


def test_empty_text_is_one_segment() -> None:
    assert segment_info("") == SegmentInfo("GSM-7", 0, 1)


def test_basic_table_details() -> None:
    assert is_gsm7("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ ¡¿§ÄÖÑÜäöñüà")
    assert not is_gsm7("ç")  # only the capital is in the table
    assert not is_gsm7("á")
    assert not is_gsm7("\t")
    assert "\x1b" not in GSM7_BASIC


def test_to_gsm_friendly() -> None:
    smart = "\u201cIt\u2019s ready\u201d \u2013 7\u00a0PM\u2026"
    assert to_gsm_friendly(smart) == '"It\'s ready" - 7 PM...'
    assert is_gsm7(to_gsm_friendly(smart))


def test_to_gsm_friendly_leaves_accents_unless_asked() -> None:
    assert to_gsm_friendly("está") == "está"
    assert to_gsm_friendly("está aquí", strip_accents=True) == "esta aqui"
    assert to_gsm_friendly("niño") == "niño"  # ñ is GSM-7 already


def test_babel_narrow_no_break_space_is_fixed() -> None:
    assert to_gsm_friendly("7:45\u202fPM") == "7:45 PM"


gsm_text = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=700)


@given(gsm_text)
def test_gsm_segments_are_enough_and_minimal(text: str) -> None:
    info = segment_info(text)
    assert info.encoding == "GSM-7"
    assert info.units == sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    if info.units <= 160:
        assert info.segments == 1
    else:
        lower = -(-info.units // 153)
        assert lower <= info.segments <= lower + info.units // 153


@given(st.text(max_size=400))
def test_segments_grow_with_text(text: str) -> None:
    info = segment_info(text)
    longer = segment_info(text + "x")
    if longer.encoding == info.encoding:
        assert longer.segments >= info.segments
        assert longer.units == info.units + 1


SMART = "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00a0\u202f"


@given(st.text(alphabet=sorted(GSM7_BASIC) + list(SMART), max_size=200))
def test_friendly_text_of_typographic_chars_is_gsm7(text: str) -> None:
    friendly = to_gsm_friendly(text)
    assert is_gsm7(friendly)
    assert to_gsm_friendly(friendly) == friendly
