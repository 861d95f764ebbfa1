"""Message templates: Jinja2's sandbox, locale fallback, and a Babel-formatted context.

Templates are data a tenant may edit, so they run in an immutable sandbox with strict
undefined variables: a typo becomes a :class:`TemplateRenderError` naming the template,
never a silently empty message. Only the ``html`` part is autoescaped.

Time is UTC inside Order Bell; :func:`build_context` is where it turns local, in the
location's time zone and formatted for a locale by Babel.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, format_time
from babel.numbers import format_currency
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from orderbell.domain import default_templates as shipped
from orderbell.domain.model import ChannelFamily, Guest, Location, OrderView
from orderbell.domain.quiet_hours import zone

PARTS: frozenset[str] = frozenset(shipped.PARTS)
FALLBACK_LOCALE = "en"
#: Families whose rendering carries a subject (email subject, push title, ticket subject).
#: the template appended to an email's text when it carries an unsubscribe link
EMAIL_FOOTER = "_email_footer"
_WITH_SUBJECT = frozenset({ChannelFamily.EMAIL, ChannelFamily.PUSH, ChannelFamily.HELPDESK})

TemplateKey = tuple[str, str, str]  # (name, locale, part)


class TemplateRenderError(ValueError):
    """A template is missing, does not parse, or failed to render; the message says which."""

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        locale: str | None = None,
        part: str | None = None,
        line: int | None = None,
    ) -> None:
        self.name = name
        self.locale = locale
        self.part = part
        self.line = line
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message ready for a channel: ``text`` (spoken text for voice), optional extras."""

    text: str
    subject: str | None = None
    html: str | None = None


def normalise_locale(locale: str | None) -> str:
    """``"es_mx"`` -> ``"es-MX"``; empty -> ``"en"``."""
    if not locale or not locale.strip():
        return FALLBACK_LOCALE
    lang, _, region = locale.strip().replace("_", "-").partition("-")
    return f"{lang.lower()}-{region.upper()}" if region else lang.lower()


def locale_chain(locale: str | None) -> tuple[str, ...]:
    """Where to look for a template: ``es-MX`` -> ``es-MX``, ``es``, ``en``."""
    full = normalise_locale(locale)
    chain = [full, full.partition("-")[0], FALLBACK_LOCALE]
    return tuple(dict.fromkeys(chain))


def _environment(*, html: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        autoescape=html,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


_TEXT_ENV = _environment(html=False)
_HTML_ENV = _environment(html=True)


def _env_for(part: str) -> ImmutableSandboxedEnvironment:
    return _HTML_ENV if part == "html" else _TEXT_ENV


def validate(source: str, *, part: str = "text") -> None:
    """Raise :class:`TemplateRenderError` if ``source`` is not a valid template."""
    try:
        _env_for(part).parse(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f"line {line}: " if line else ""
        raise TemplateRenderError(f"{where}{exc.message or exc}", line=line) from exc


def _tidy(part: str, rendered: str) -> str:
    if part == "subject":
        return " ".join(rendered.split())
    if part == "html":
        return rendered.strip()
    return "\n".join(line.rstrip() for line in rendered.splitlines()).strip()


class TemplateSet:
    """The default templates plus a tenant's overrides, keyed ``(name, locale, part)``."""

    def __init__(
        self,
        overrides: Mapping[TemplateKey, str] | None = None,
        *,
        defaults: Mapping[TemplateKey, str] | None = None,
    ) -> None:
        self._defaults = dict(shipped.DEFAULT_TEMPLATES if defaults is None else defaults)
        self._overrides: dict[TemplateKey, str] = {}
        self._compiled: dict[tuple[str, TemplateKey], Template] = {}
        for (name, locale, part), source in (overrides or {}).items():
            if part not in PARTS:
                raise TemplateRenderError(
                    f"template {name!r}: unknown part {part!r} (use one of {sorted(PARTS)})",
                    name=name,
                    locale=locale,
                    part=part,
                )
            key = (name, normalise_locale(locale), part)
            try:
                validate(source, part=part)
            except TemplateRenderError as exc:
                raise TemplateRenderError(
                    f"template {name!r} ({key[1]}, {part}): {exc}",
                    name=name,
                    locale=key[1],
                    part=part,
                    line=exc.line,
                ) from exc
            self._overrides[key] = source

    def _find(self, name: str, part: str, locale: str) -> tuple[str, TemplateKey, str] | None:
        for candidate in locale_chain(locale):
            key = (name, candidate, part)
            if key in self._overrides:
                return "override", key, self._overrides[key]
            if key in self._defaults:
                return "default", key, self._defaults[key]
        return None

    def has(self, name: str, part: str, locale: str) -> bool:
        return self._find(name, part, locale) is not None

    def names(self) -> frozenset[str]:
        keys = self._defaults.keys() | self._overrides.keys()
        return frozenset(name for name, _, _ in keys if not name.startswith("_"))

    def render(self, name: str, part: str, locale: str, context: Mapping[str, Any]) -> str:
        """Render one part; ``voice`` falls back to ``text``, ``subject`` to a generic one."""
        if part not in PARTS:
            raise TemplateRenderError(f"unknown template part {part!r}", name=name, part=part)
        found = self._find(name, part, locale)
        if found is None and part == "voice":
            found = self._find(name, "text", locale)
        if found is None and part == "subject" and self.has(name, "text", locale):
            found = self._find("_subject", "subject", locale)
        if found is None:
            raise TemplateRenderError(
                f"no template {name!r} with a {part!r} part for locale {locale!r}",
                name=name,
                locale=locale,
                part=part,
            )
        origin, key, source = found
        cache_key = (origin, key)
        label = f"template {key[0]!r} ({key[1]}, {key[2]})"
        try:
            template = self._compiled.get(cache_key)
            if template is None:
                template = _env_for(key[2]).from_string(source)
                self._compiled[cache_key] = template
            rendered = template.render(dict(context))
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise TemplateRenderError(
                f"{label}: {exc.message or exc}", name=key[0], locale=key[1], part=key[2], line=line
            ) from exc
        except Exception as exc:  # a sandboxed template may raise anything; name it
            raise TemplateRenderError(
                f"{label}: {type(exc).__name__}: {exc}", name=key[0], locale=key[1], part=key[2]
            ) from exc
        return _tidy(key[2], rendered)

    def render_for_family(
        self, name: str, family: ChannelFamily, locale: str, context: Mapping[str, Any]
    ) -> Rendered:
        """Everything one channel family needs: voice speaks, email gets subject and html."""
        if family == ChannelFamily.VOICE:
            return Rendered(text=self.render(name, "voice", locale, context))
        text = self.render(name, "text", locale, context)
        if (
            family == ChannelFamily.EMAIL
            and context.get("unsubscribe_link")
            and self.has(EMAIL_FOOTER, "text", locale)
        ):  # follow-up/marketing email: sender, postal address, visible unsubscribe link
            text += "\n\n" + self.render(EMAIL_FOOTER, "text", locale, context)
        subject = self.render(name, "subject", locale, context) if family in _WITH_SUBJECT else None
        html = None
        if family == ChannelFamily.EMAIL and self.has(name, "html", locale):
            html = self.render(name, "html", locale, context)
        return Rendered(text=text, subject=subject, html=html)


# --- context ------------------------------------------------------------------------

_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " "})


def _plain(value: str) -> str:
    """Babel output with its no-break spaces made plain (they would force UCS-2 SMS)."""
    return value.translate(_SPACES)


def babel_locale(locale: str | None) -> Locale:
    try:
        return Locale.parse(normalise_locale(locale).replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(FALLBACK_LOCALE)


def _words(table: Mapping[str, Mapping[str, str]], locale: str) -> Mapping[str, str]:
    for candidate in locale_chain(locale):
        if candidate in table:
            return table[candidate]
    return table[FALLBACK_LOCALE]


def _name_fallback(locale: str) -> str:
    for candidate in locale_chain(locale):
        if candidate in shipped.NAME_FALLBACK:
            return shipped.NAME_FALLBACK[candidate]
    return ""


def format_local_time(when: datetime | None, *, tz: str, locale: str, now: datetime) -> str:
    """A short local time ("7:45 PM", "19:45"); with the date when it is not today."""
    if when is None:
        return ""
    tzinfo = zone(tz)
    loc = babel_locale(locale)
    text = format_time(when, "short", tzinfo=tzinfo, locale=loc)
    if when.astimezone(tzinfo).date() != now.astimezone(tzinfo).date():
        text = f"{format_skeleton('MMMd', when, tzinfo=tzinfo, locale=loc)} {text}"
    return _plain(text)


@functools.lru_cache(maxsize=1024)
def _display_phone(phone: str | None) -> str:
    """The location's number as guests read it (parsed once per number, not per message)."""
    if not phone:
        return ""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone
    if not phonenumbers.is_valid_number(number):
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def status_words(status: str, fulfillment: str, locale: str) -> str:
    words = _words(shipped.STATUS_WORDS, locale)
    return words.get(f"{status}:{fulfillment}") or words.get(status, status.replace("_", " "))


def build_context(
    order: OrderView,
    guest: Guest | None,
    location: Location,
    *,
    now: datetime,
    tracking_link: str | None,
    extra: Mapping[str, Any] | None = None,
    locale: str | None = None,
) -> dict[str, Any]:
    """The variables every template may use, formatted for people.

    Formatting follows ``locale`` (default: the location's) and the location's time
    zone. Keys: ``name`` (first name, or a per-locale fallback such as "there"),
    ``first_name``, ``guest_name``, ``order_number`` ("#1042"), ``number`` ("1042"),
    ``number_spoken`` ("1 0 4 2"), ``location_name``, ``location_phone``,
    ``location_address``, ``fulfillment`` (pickup/delivery/dine_in) and
    ``fulfillment_text``, ``status`` and ``status_text``, ``eta``, ``promised_time``,
    ``time`` (ETA, else promised time; "" when unknown), ``total``, ``tracking_link``,
    ``locale``, ``lang``. ``extra`` is merged last and may override any of them.
    """
    loc = normalise_locale(locale or location.locale)
    lang = loc.partition("-")[0]
    raw_name = (guest.name or "").strip() if guest else ""
    first_name = raw_name.split()[0] if raw_name else ""
    number = (order.number or order.external_id).strip().lstrip("#")

    def local_time(when: datetime | None) -> str:
        return format_local_time(when, tz=location.timezone, locale=loc, now=now)

    total = ""
    if order.total is not None:
        total = _plain(
            format_currency(order.total.amount, order.total.currency, locale=babel_locale(loc))
        )
    eta, promised = local_time(order.eta), local_time(order.promised_at)
    context: dict[str, Any] = {
        "name": first_name or _name_fallback(loc),
        "first_name": first_name,
        "guest_name": raw_name,
        "order_number": f"#{number}",
        "number": number,
        "number_spoken": " ".join(ch for ch in number if ch.isalnum()),
        "location_name": location.name,
        "location_phone": _display_phone(location.phone),
        "location_address": location.address or "",
        "fulfillment": order.fulfillment.value,
        "fulfillment_text": _words(shipped.FULFILLMENT_WORDS, loc).get(
            order.fulfillment.value, order.fulfillment.value
        ),
        "status": order.status.value,
        "status_text": status_words(order.status.value, order.fulfillment.value, loc),
        "eta": eta,
        "promised_time": promised,
        "time": eta or promised,
        "total": total,
        "tracking_link": tracking_link or order.tracking_url or "",
        "locale": loc,
        "lang": lang,
    }
    context.update(extra or {})
    return context
