"""Templates: defaults for every trigger and part, locale fallback, sandbox, context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from orderbell.domain.default_templates import DEFAULT_TEMPLATES, PARTS
from orderbell.domain.model import (
    ChannelFamily,
    Fulfillment,
    Guest,
    Location,
    Money,
    OrderStatus,
    OrderView,
    Trigger,
)
from orderbell.domain.sms import segment_info
from orderbell.domain.templates import (
    Rendered,
    TemplateRenderError,
    TemplateSet,
    build_context,
    locale_chain,
    normalise_locale,
    validate,
)

NOW = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)  # 18:00 in New York
ETA = datetime(2026, 11, 29, 0, 45, tzinfo=UTC)  # 19:45 in New York, same local day
LINK = "https://ob.example.com/t/Ab3dE5gH7k"
DOWNTOWN = Location(
    name="Downtown",
    timezone="America/New_York",
    locale="en-US",
    phone="+12125550123",
    address="1 Main St, New York",
)
MARIA = Guest(name="Maria Lopez", locale="en")
TEMPLATES = TemplateSet()


def order(
    status: OrderStatus = OrderStatus.READY,
    fulfillment: Fulfillment = Fulfillment.PICKUP,
    **kwargs: Any,
) -> OrderView:
    fields: dict[str, Any] = {"eta": ETA, "total": Money(Decimal("12.50"), "USD")}
    fields.update(kwargs)
    return OrderView(
        id=7,
        external_id="ext-1042",
        number="1042",
        status=status,
        fulfillment=fulfillment,
        placed_at=NOW - timedelta(minutes=20),
        **fields,
    )


def context(locale: str = "en", **kwargs: Any) -> dict[str, Any]:
    view = order(**kwargs)
    return build_context(view, MARIA, DOWNTOWN, now=NOW, tracking_link=LINK, locale=locale)


# --- the defaults --------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "es"])
@pytest.mark.parametrize("trigger", list(Trigger))
def test_every_trigger_has_every_part(locale: str, trigger: Trigger) -> None:
    for part in PARTS:
        assert (trigger.value, locale, part) in DEFAULT_TEMPLATES


@pytest.mark.parametrize("locale", ["en", "es"])
@pytest.mark.parametrize("fulfillment", list(Fulfillment))
@pytest.mark.parametrize("trigger", list(Trigger))
def test_short_texts_fit_one_gsm7_segment(
    locale: str, fulfillment: Fulfillment, trigger: Trigger
) -> None:
    status = OrderStatus(trigger.value) if trigger.value in set(OrderStatus) else OrderStatus.READY
    ctx = context(locale, status=status, fulfillment=fulfillment)
    text = TEMPLATES.render(trigger.value, "text", locale, ctx)
    info = segment_info(text)
    assert (info.encoding, info.segments) == ("GSM-7", 1), text
    assert "Maria" in text
    for part in PARTS:
        assert TEMPLATES.render(trigger.value, part, locale, ctx).strip()


def test_ready_for_pickup_wording() -> None:
    text = TEMPLATES.render("ready", "text", "en", context())
    assert text == f"Hi Maria, your order #1042 is ready for pickup at Downtown. Track: {LINK}"


def test_spanish_ready_for_pickup() -> None:
    text = TEMPLATES.render("ready", "text", "es", context("es"))
    assert text.startswith("Hola Maria, tu pedido #1042 ya se puede recoger en Downtown.")


def test_out_for_delivery_wording_and_time() -> None:
    ctx = context(status=OrderStatus.OUT_FOR_DELIVERY, fulfillment=Fulfillment.DELIVERY)
    text = TEMPLATES.render("out_for_delivery", "text", "en", ctx)
    assert "is out for delivery. Arriving about 7:45 PM." in text


def test_dine_in_ready_goes_to_the_table() -> None:
    ctx = context(fulfillment=Fulfillment.DINE_IN)
    assert "to your table" in TEMPLATES.render("ready", "text", "en", ctx)


def test_confirmed_mentions_pickup_or_delivery_time() -> None:
    pickup = TEMPLATES.render("confirmed", "text", "en", context(status=OrderStatus.CONFIRMED))
    delivery_ctx = context(status=OrderStatus.CONFIRMED, fulfillment=Fulfillment.DELIVERY)
    delivery = TEMPLATES.render("confirmed", "text", "en", delivery_ctx)
    assert "Pickup at about 7:45 PM" in pickup
    assert "Delivery at about 7:45 PM" in delivery


def test_inquiry_reports_current_status() -> None:
    ctx = context(status=OrderStatus.IN_KITCHEN)
    text = TEMPLATES.render("inquiry", "text", "en", ctx)
    assert "is being prepared. Expected 7:45 PM." in text
    es = TEMPLATES.render("inquiry", "text", "es", context("es", status=OrderStatus.IN_KITCHEN))
    assert "estado de tu pedido #1042: en cocina. Hora prevista: 19:45." in es


def test_unknown_guest_name() -> None:
    view = order()
    en = build_context(view, None, DOWNTOWN, now=NOW, tracking_link=None)
    es = build_context(view, None, DOWNTOWN, now=NOW, tracking_link=None, locale="es")
    assert TEMPLATES.render("ready", "text", "en", en).startswith("Hi there, your order")
    assert TEMPLATES.render("ready", "text", "es", es).startswith("Hola, tu pedido")
    assert "Track" not in TEMPLATES.render("ready", "text", "en", en)


# --- rendering per family ------------------------------------------------------------


def test_email_has_subject_html_and_tracking_link() -> None:
    rendered = TEMPLATES.render_for_family("ready", ChannelFamily.EMAIL, "en", context())
    assert rendered.subject == "Order #1042 is ready for pickup"
    assert rendered.html is not None
    assert f'href="{LINK}"' in rendered.html
    assert "1 Main St, New York" in rendered.html
    assert LINK in rendered.text


def test_voice_speaks_the_number_digit_by_digit() -> None:
    rendered = TEMPLATES.render_for_family("ready", ChannelFamily.VOICE, "en", context())
    assert rendered == Rendered(
        text="Hello Maria. This is Downtown. Your order number 1 0 4 2 is ready for pickup"
        " at Downtown. Thank you, goodbye."
    )


def test_sms_and_push() -> None:
    sms = TEMPLATES.render_for_family("ready", ChannelFamily.SMS, "en", context())
    assert sms.subject is None and sms.html is None
    push = TEMPLATES.render_for_family("ready", ChannelFamily.PUSH, "en", context())
    assert push.subject == "Order #1042 is ready for pickup"


def test_html_is_escaped_text_is_not() -> None:
    guest = Guest(name="<b>Bo</b>", locale="en")
    ctx = build_context(order(), guest, DOWNTOWN, now=NOW, tracking_link=LINK)
    rendered = TEMPLATES.render_for_family("ready", ChannelFamily.EMAIL, "en", ctx)
    assert rendered.html is not None and "&lt;b&gt;Bo&lt;/b&gt;" in rendered.html
    assert rendered.text.startswith("Hi <b>Bo</b>,")


def test_values_are_data_not_templates() -> None:
    guest = Guest(name="{{ 7 * 7 }}", locale="en")
    ctx = build_context(order(), guest, DOWNTOWN, now=NOW, tracking_link=None)
    assert TEMPLATES.render("ready", "text", "en", ctx).startswith("Hi {{, your order")


# --- locale fallback and overrides ---------------------------------------------------


def test_locale_helpers() -> None:
    assert normalise_locale("es_mx") == "es-MX"
    assert normalise_locale(None) == "en"
    assert locale_chain("es-MX") == ("es-MX", "es", "en")
    assert locale_chain("en") == ("en",)


def test_regional_locale_falls_back_to_language_then_english() -> None:
    ctx = context("es-MX")
    assert TEMPLATES.render("ready", "text", "es-MX", ctx).startswith("Hola Maria")
    assert TEMPLATES.render("ready", "text", "fr-FR", context("fr")).startswith("Hi Maria")


def test_override_wins_and_is_locale_specific() -> None:
    templates = TemplateSet({("ready", "es-mx", "text"): "¡Listo, {{ name }}!"})
    assert templates.render("ready", "text", "es-MX", context("es-MX")) == "¡Listo, Maria!"
    assert templates.render("ready", "text", "es", context("es")).startswith("Hola Maria")


def test_custom_template_falls_back_for_voice_and_subject() -> None:
    templates = TemplateSet({("promo", "en", "text"): "Hi {{ name }}, 2x1 today."})
    assert templates.render("promo", "voice", "en", context()) == "Hi Maria, 2x1 today."
    email = templates.render_for_family("promo", ChannelFamily.EMAIL, "en", context())
    assert email.subject == "Your order #1042 from Downtown"
    assert email.html is None
    assert "promo" in templates.names() and "ready" in templates.names()


def test_missing_variable_is_a_clear_error() -> None:
    templates = TemplateSet({("ready", "en", "text"): "Hi {{ nmae }}"})
    with pytest.raises(TemplateRenderError, match=r"'ready' \(en, text\).*nmae") as info:
        templates.render("ready", "text", "en", context())
    assert info.value.name == "ready" and info.value.part == "text"


def test_unknown_template_and_part() -> None:
    with pytest.raises(TemplateRenderError, match="no template 'nope'"):
        TEMPLATES.render("nope", "text", "en", context())
    with pytest.raises(TemplateRenderError, match="unknown template part"):
        TEMPLATES.render("ready", "sms", "en", context())
    with pytest.raises(TemplateRenderError, match="unknown part"):
        TemplateSet({("ready", "en", "body"): "x"})


def test_sandbox_blocks_unsafe_access() -> None:
    templates = TemplateSet(
        {("ready", "en", "text"): "{{ name.__class__.__mro__[1].__subclasses__() }}"}
    )
    with pytest.raises(TemplateRenderError):
        templates.render("ready", "text", "en", context())


def test_sandbox_is_immutable() -> None:
    templates = TemplateSet({("ready", "en", "text"): "{{ items.append(1) }}"})
    with pytest.raises(TemplateRenderError):
        templates.render("ready", "text", "en", {**context(), "items": []})


def test_validate_reports_syntax_errors_with_line() -> None:
    validate("Hi {{ name }}")
    with pytest.raises(TemplateRenderError, match="line 2") as info:
        validate("Hi\n{% if name %}unclosed")
    assert info.value.line == 2


def test_bad_override_fails_at_construction() -> None:
    with pytest.raises(TemplateRenderError, match=r"'ready' \(en, text\)"):
        TemplateSet({("ready", "en", "text"): "{{ name "})


# --- context -------------------------------------------------------------------------


def test_context_formats_time_money_and_names() -> None:
    ctx = context()
    assert ctx["eta"] == "7:45 PM"  # plain space, not U+202F, so SMS stays GSM-7
    assert ctx["time"] == "7:45 PM"
    assert ctx["total"] == "$12.50"
    assert ctx["name"] == "Maria" and ctx["guest_name"] == "Maria Lopez"
    assert ctx["order_number"] == "#1042" and ctx["number_spoken"] == "1 0 4 2"
    assert ctx["location_phone"] == "+1 212-555-0123"
    assert ctx["status_text"] == "ready for pickup"
    assert ctx["tracking_link"] == LINK


def test_context_in_spanish() -> None:
    ctx = context("es", total=Money(Decimal("12.50"), "EUR"))
    assert ctx["eta"] == "19:45"
    assert ctx["total"] == "12,50 €"
    assert ctx["status_text"] == "listo para recoger"
    assert ctx["fulfillment_text"] == "recogida"
    assert ctx["name"] == "Maria"


def test_context_uses_location_locale_by_default() -> None:
    madrid = Location(name="Sol", timezone="Europe/Madrid", locale="es", currency="EUR")
    ctx = build_context(order(), MARIA, madrid, now=NOW, tracking_link=None)
    # NOW is 00:00 on the 29th in Madrid, ETA 01:45 the same local day.
    assert ctx["eta"] == "1:45"
    assert ctx["locale"] == "es"


def test_time_on_another_day_includes_the_date() -> None:
    ctx = context(eta=datetime(2026, 11, 30, 0, 45, tzinfo=UTC))
    assert ctx["eta"] == "Nov 29 7:45 PM"


def test_unknown_times_are_empty_and_templates_skip_them() -> None:
    ctx = context(status=OrderStatus.CONFIRMED, eta=None)
    assert ctx["time"] == ""
    text = TEMPLATES.render("confirmed", "text", "en", ctx)
    assert text == f"Hi Maria, your order #1042 is confirmed. Track: {LINK}"


def test_number_with_hash_and_tracking_url_from_order() -> None:
    view = order(tracking_url="https://shop.example/track/1")
    view = OrderView(**{**{f: getattr(view, f) for f in view.__slots__}, "number": "#1042"})
    ctx = build_context(view, MARIA, DOWNTOWN, now=NOW, tracking_link=None)
    assert ctx["order_number"] == "#1042"
    assert ctx["tracking_link"] == "https://shop.example/track/1"


def test_extra_overrides() -> None:
    view = order()
    ctx = build_context(
        view, MARIA, DOWNTOWN, now=NOW, tracking_link=None, extra={"name": "M", "x": 1}
    )
    assert ctx["name"] == "M" and ctx["x"] == 1
