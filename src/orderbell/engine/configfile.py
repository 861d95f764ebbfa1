"""The one configuration file: read, interpolate ``${ENV}``, validate, split secrets.

``load_config(path)`` returns a ``ConfigFile`` or raises one ``ConfigError`` listing every
problem found, each as ``file:line field.path: message``. Writing it to the database is
the applier's job; this module only reads.

After a successful load, every ``ChannelSpec`` and ``IntegrationSpec`` has ``settings``
(plain values, fit to show) and ``secrets`` (values named in the adapter's
``secret_fields``, values that came from ``${...}``, and an integration's ``secret``
under the key ``"secret"``), which the applier stores sealed.

YAML is read the YAML 1.2 way where 1.1 surprises people: ``no``/``yes``/``on``/``off``
stay strings (``locale: no`` is Norwegian), and ``20:00``, ``+12125550100`` and ``0123``
stay strings rather than becoming numbers.
"""

from __future__ import annotations

import base64
import difflib
import os
import re
import secrets as _random
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from orderbell.config import Settings
from orderbell.domain.model import (
    FAMILY_CONTACT,
    ChannelFamily,
    Fulfillment,
    Location,
    Purpose,
    Rule,
    Trigger,
)
from orderbell.domain.policy import DEFAULT_RULES
from orderbell.engine.sample_config import SAMPLE_CONFIG
from orderbell.errors import ConfigError

SUPPORTED_VERSION = 1
TEMPLATE_PARTS = ("text", "subject", "html", "voice")

# ----------------------------------------------------------------------------- values


def parse_duration(value: str | int) -> int:
    """Seconds in ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``, ``"1w"``, ``"1h30m"`` or an int.

    Raises ``ValueError`` for anything else, including negative numbers.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 5m, 2h, 1d)")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative (got {value})")
        return value
    text = value.strip().lower().replace(" ", "")
    if text.isdigit():
        return int(text)
    if not text or not re.fullmatch(r"(?:\d+[smhdw])+", text):
        raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 5m, 2h, 1d or 1h30m)")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return sum(int(n) * unit[u] for n, u in re.findall(r"(\d+)([smhdw])", text))


def _slug(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?", value):
        raise ValueError(
            f"{value!r} is not a valid slug: use lower-case letters, digits and '-' "
            "(at most 64, not starting or ending with '-')"
        )
    return value


def _key(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", value):
        raise ValueError(
            f"{value!r} is not a valid id: use letters, digits, '-' and '_' (at most 64)"
        )
    return value


def _name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", value):
        raise ValueError(
            f"{value!r} is not a valid name: use lower-case letters, digits, '-' and '_' "
            "(at most 64)"
        )
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), 1)
        hint = f"did you mean {close[0]!r}?" if close else "use an IANA name like America/New_York"
        raise ValueError(f"unknown time zone {value!r} ({hint})") from None
    return value


def _locale(value: str) -> str:
    try:
        return str(Locale.parse(value.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError, LookupError):
        raise ValueError(f"unknown locale {value!r} (use e.g. en, es, fr_CA, pt_BR)") from None


def _currency(value: str) -> str:
    code = value.upper()
    if code not in list_currencies():
        raise ValueError(f"unknown currency {value!r} (use an ISO 4217 code like USD, EUR)")
    return code


def _hhmm(value: str) -> str:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a time of day like 08:00 or 20:30")
    return f"{int(match[1]):02d}:{match[2]}"


def _audience(value: str) -> str:
    if value == "guest" or re.fullmatch(r"staff:[a-z0-9][a-z0-9_-]{0,63}", value):
        return value
    raise ValueError(f"audience must be 'guest' or 'staff:<channel name>', not {value!r}")


Slug = Annotated[str, AfterValidator(_slug)]
Duration = Annotated[int, BeforeValidator(parse_duration)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


# ----------------------------------------------------------------------------- the file


class QuietHours(_Spec):
    """When follow-ups are held, in the location's local time (``start`` to ``end``).

    Transactional order updates are not held. The default, 20:00 to 08:00, keeps
    follow-ups to 8 a.m.-8 p.m.
    """

    start: Annotated[str, AfterValidator(_hhmm)] = "20:00"
    end: Annotated[str, AfterValidator(_hhmm)] = "08:00"


def _minute_or_more(value: int | None) -> int | None:
    if value is not None and value < 60:
        raise ValueError(f"{value} seconds is too short for a preparation time (write e.g. 20m)")
    return value


def _web_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"https?://[^\s/]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class FollowupsSpec(_Spec):
    """Delay detection, feedback requests and coalescing at one location.

    Every key is optional; what is left out takes the default shown (see
    ``docs/followups.md``). Durations are written like ``90s``, ``20m``, ``1h``, ``30d``.
    """

    #: per fulfilment, when an order without a promised time or ETA is due
    #: (default pickup 20m, delivery 45m, dine_in 25m)
    prep_time: (
        dict[
            Fulfillment,
            Annotated[int, BeforeValidator(parse_duration), AfterValidator(_minute_or_more)],
        ]
        | None
    ) = None
    #: an order is late this long after its expected time (default 5m)
    grace: Duration | None = None
    #: open an incident (PagerDuty) this long after the order became late (default 20m)
    incident_after: Duration | None = None
    #: tell the guest again only when the estimate slips by this much (default 10m)
    eta_slip: Duration | None = None
    #: the new estimate when nobody gave an ETA: this long from now (default 10m)
    late_estimate: Duration | None = None
    #: at most this many delay messages per order (default 3)
    max_delay_messages: int | None = Field(default=None, ge=0, le=20)
    #: per fulfilment, how long after completion to ask for feedback; null: never
    #: (default pickup 30m, delivery 30m, dine_in never)
    feedback_after: dict[Fulfillment, Duration | None] | None = None
    #: ask one guest for feedback at most once in this period (default 30d)
    feedback_every: Duration | None = None
    #: the feedback link; {token} and {order_number} are filled in (default: the
    #: guest's tracking page)
    feedback_url: Annotated[str | None, AfterValidator(_web_url)] = None
    #: hold guest status updates this long so a newer status replaces them (default 0s)
    coalesce: Annotated[Duration | None, Field(le=600)] = None

    def stored(self) -> dict[str, Any]:
        """The form kept in the location's settings: seconds, only the keys given."""
        return self.model_dump(mode="json", exclude_none=True)


class LocationSpec(_Spec):
    slug: Slug
    name: str
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    locale: Annotated[str, AfterValidator(_locale)] = "en"
    currency: Annotated[str, AfterValidator(_currency)] = "USD"
    phone: str | None = None
    address: str | None = None
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    followups: FollowupsSpec | None = None

    def stored_settings(self) -> dict[str, Any]:
        """What goes into the location's ``settings`` column."""
        return {"followups": self.followups.stored()} if self.followups else {}

    def to_location(self) -> Location:
        return Location(
            name=self.name,
            timezone=self.timezone,
            locale=self.locale,
            currency=self.currency,
            phone=self.phone,
            address=self.address,
            quiet_start=self.quiet_hours.start,
            quiet_end=self.quiet_hours.end,
        )


class _HasSecrets(_Spec):
    _secrets: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def secrets(self) -> dict[str, Any]:
        """Values to store sealed (filled by ``load_config``)."""
        return self._secrets


class IntegrationSpec(_HasSecrets):
    id: Annotated[str, AfterValidator(_key)]
    source: str
    location: str | None = None
    secret: str | None = Field(default=None, repr=False)
    settings: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    #: update the orders of another integration of this tenant (or "api"), e.g. a delivery
    #: partner reporting on orders that came from the POS
    orders_of: str | None = None


class ChannelSpec(_HasSecrets):
    name: Annotated[str, AfterValidator(_name)]
    provider: str
    family: ChannelFamily | None = None  # filled from the provider by load_config
    location: str | None = None
    priority: int = 100
    settings: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class RuleSpec(_Spec):
    trigger: Trigger
    fulfillment: Fulfillment | None = None
    location: str | None = None
    audience: Annotated[str, AfterValidator(_audience)] = "guest"
    channels: list[str] = Field(default_factory=list)
    template: str | None = None
    delay: Duration = 0
    expires_after: Duration | None = None
    purpose: Purpose = Purpose.TRANSACTIONAL
    enabled: bool = True

    @classmethod
    def from_rule(cls, rule: Rule, location: str | None = None) -> RuleSpec:
        return cls(
            trigger=rule.trigger,
            fulfillment=rule.fulfillment,
            location=location,
            audience=rule.audience,
            channels=list(rule.channels),
            template=rule.template,
            delay=rule.delay_seconds,
            expires_after=rule.expires_after_seconds,
            purpose=rule.purpose,
            enabled=rule.enabled,
        )

    def to_rule(self) -> Rule:
        return Rule(
            trigger=self.trigger,
            audience=self.audience,
            fulfillment=self.fulfillment,
            channels=tuple(self.channels),
            template=self.template,
            delay_seconds=self.delay,
            purpose=self.purpose,
            expires_after_seconds=self.expires_after,
            enabled=self.enabled,
        )


class TemplateSpec(_Spec):
    name: Annotated[str, AfterValidator(_name)]
    locale: Annotated[str, AfterValidator(_locale)] = "en"
    text: str | None = None
    subject: str | None = None
    html: str | None = None
    voice: str | None = None

    @model_validator(mode="after")
    def _has_a_part(self) -> TemplateSpec:
        if not self.parts():
            raise ValueError("a template needs at least one of: " + ", ".join(TEMPLATE_PARTS))
        return self

    def parts(self) -> dict[str, str]:
        """``{part: body}`` for the parts given, e.g. ``{"text": ..., "subject": ...}``."""
        return {p: getattr(self, p) for p in TEMPLATE_PARTS if getattr(self, p) is not None}


class TenantSpec(_Spec):
    slug: Slug
    name: str
    locations: list[LocationSpec] = Field(default_factory=list)
    integrations: list[IntegrationSpec] = Field(default_factory=list)
    channels: list[ChannelSpec] = Field(default_factory=list)
    rules: list[RuleSpec] | None = None  # None: DEFAULT_RULES
    templates: list[TemplateSpec] = Field(default_factory=list)
    #: purge message texts, raw order payloads and guests' replies after this many days
    retention_days: int | None = Field(default=None, ge=1, le=3650)

    def effective_rules(self) -> list[RuleSpec]:
        return list(self.rules) if self.rules is not None else default_rules()


def _version(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


class ConfigFile(_Spec):
    """The whole file. Top-level keys starting with ``x-`` are ignored (a place for anchors)."""

    version: Annotated[Literal[1], BeforeValidator(_version)]
    tenants: list[TenantSpec] = Field(default_factory=list)


def default_rules() -> list[RuleSpec]:
    """The rules a tenant gets when its ``rules:`` is absent (the sample writes them out)."""
    return [RuleSpec.from_rule(rule) for rule in DEFAULT_RULES]


def sample_config(webhook_secret: str | None = None) -> str:
    """A commented sample file that loads with no environment variable set.

    ``webhook_secret`` is the demo integration's fallback secret; a random Standard
    Webhooks secret (``whsec_...``) when not given.
    """
    if webhook_secret is None:
        webhook_secret = "whsec_" + base64.b64encode(_random.token_bytes(24)).decode("ascii")
    return SAMPLE_CONFIG.replace("@@WEBHOOK_SECRET@@", webhook_secret)


# ----------------------------------------------------------------------------- problems

PathT = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    field: str  # e.g. "tenants[0].channels[1].provider"; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where} {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


def format_path(path: PathT) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class _Doc:
    """What the reader learnt about the file: where each value is, which came from ``${}``."""

    file: str
    lines: dict[PathT, int] = field(default_factory=dict)
    nodes: dict[PathT, yaml.Node] = field(default_factory=dict)
    from_env: set[PathT] = field(default_factory=set)
    issues: list[ConfigIssue] = field(default_factory=list)

    def line(self, path: PathT) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def issue(self, path: PathT, message: str, line: int | None = None) -> None:
        self.issues.append(
            ConfigIssue(self.file, line or self.line(path), format_path(path), message)
        )

    def raise_if_any(self) -> None:
        if not self.issues:
            return
        issues = sorted(dict.fromkeys(self.issues), key=lambda i: i.line or 0)
        first = issues[0]
        if len(issues) == 1:
            error = ConfigError(
                first.message, file=first.file, line=first.line, field=first.field or None
            )
        else:
            lines = "\n".join(str(i) for i in issues)
            error = ConfigError(f"{len(issues)} problems in {first.file}:\n{lines}")
            error.file, error.line, error.field = first.file, first.line, first.field or None
        error.issues = issues  # type: ignore[attr-defined]
        raise error


# ----------------------------------------------------------------------------- YAML

_T = "tag:yaml.org,2002:"
_ENV = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Reader:
    """Turns composed YAML nodes into plain data, remembering each value's line."""

    def __init__(self, doc: _Doc, env: Mapping[str, str]) -> None:
        self.doc = doc
        self.env = env
        self.constructor = yaml.constructor.SafeConstructor()
        self.active: set[int] = set()

    def read(self, node: yaml.Node, path: PathT) -> Any:
        self.doc.nodes[path] = node
        if id(node) in self.active:
            self.doc.issue(path, "recursive YAML alias", node.start_mark.line + 1)
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                out = []
                for i, item in enumerate(node.value):
                    self.doc.lines[(*path, i)] = item.start_mark.line + 1
                    out.append(self.read(item, (*path, i)))
                return out
            return self._scalar(node, path, interpolate=True)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: PathT) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        explicit: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _T + "merge":
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    value = self.read(source, path)
                    if isinstance(value, dict):
                        merged.update({k: v for k, v in value.items() if k not in merged})
                    else:
                        self.doc.issue(
                            path, "'<<' merges only mappings", key_node.start_mark.line + 1
                        )
                continue
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.doc.issue(path, "a mapping key must be a plain value", line)
                continue
            key = self._scalar(key_node, path, interpolate=False)
            if key in explicit:
                self.doc.issue((*path, key), f"duplicate key {key!r}", line)
                continue
            self.doc.lines[(*path, key)] = line
            explicit[key] = self.read(value_node, (*path, key))
        return {**merged, **explicit}

    def _scalar(self, node: yaml.ScalarNode, path: PathT, *, interpolate: bool) -> Any:
        tag, text = node.tag, node.value
        if tag == _T + "str":
            return self._interpolate(text, node, path) if interpolate else text
        if node.style is None:  # plain: keep YAML 1.1 surprises as strings
            if tag == _T + "bool" and text.lower() not in ("true", "false"):
                return text
            if tag in (_T + "int", _T + "float") and (
                ":" in text
                or text.startswith("+")
                or (len(text) > 1 and text[0] == "0" and text[1] != ".")
            ):
                return text
            if tag == _T + "timestamp":
                return text
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.doc.issue(path, f"cannot read this value: {problem}", node.start_mark.line + 1)
            return None

    def _interpolate(self, text: str, node: yaml.Node, path: PathT) -> str:
        if "${" not in text:
            return text

        def substitute(match: re.Match[str]) -> str:
            escaped, name, default = match.groups()
            if escaped:
                return match.group(0)[1:]
            self.doc.from_env.add(path)
            value = self.env.get(name)
            if default is not None and not value:
                return default
            if value is None:
                self.doc.issue(
                    path,
                    f"environment variable {name} is not set "
                    f"(set it, or write ${{{name}:-default}})",
                    node.start_mark.line + 1,
                )
                return ""
            return value

        return _ENV.sub(substitute, text)


def _compose(text: str, doc: _Doc) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        line = mark.line + 1 if mark else None
        if line and "${" in (text.splitlines()[line - 1 : line] or [""])[0]:
            problem += ' (inside { } or [ ], write ${...} in quotes: "${VAR}")'
        doc.issue((), f"invalid YAML: {problem}", line)
    except yaml.YAMLError as exc:
        doc.issue((), f"invalid YAML: {exc}")
    return None


# ----------------------------------------------------------------------------- loading


def load_config(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    channels: Mapping[str, Any] | None = None,
    sources: Mapping[str, Any] | None = None,
    channel_defaults: Callable[[str], Mapping[str, Any]] | None = None,
) -> ConfigFile:
    """Read and check the config file at ``path``; ``ConfigError`` lists every problem.

    ``env`` defaults to ``os.environ``; ``channels`` and ``sources`` to the registries.
    ``channel_defaults(provider)`` gives the settings the runtime fills in when the file
    leaves them out (the outbox ``path``); they are used only to validate, never stored.
    The default knows the outbox path.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=name) from None
    return parse_config(
        text,
        filename=name,
        env=env,
        channels=channels,
        sources=sources,
        channel_defaults=channel_defaults,
    )


def parse_config(
    text: str,
    *,
    filename: str = "<config>",
    env: Mapping[str, str] | None = None,
    channels: Mapping[str, Any] | None = None,
    sources: Mapping[str, Any] | None = None,
    channel_defaults: Callable[[str], Mapping[str, Any]] | None = None,
) -> ConfigFile:
    """``load_config`` over text already read; ``filename`` is used in messages."""
    if channels is None:
        from orderbell.channels.registry import CHANNELS as channels
    if sources is None:
        from orderbell.sources.registry import SOURCES as sources
    doc = _Doc(filename)
    root = _compose(text, doc)
    doc.raise_if_any()
    if root is None:
        doc.issue((), "the file is empty", 1)
        doc.raise_if_any()
    doc.lines[()] = root.start_mark.line + 1
    data = _Reader(doc, os.environ if env is None else env).read(root, ())
    if not isinstance(data, dict):
        doc.issue((), "the file must be a mapping with 'version' and 'tenants'")
        doc.raise_if_any()

    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    config: ConfigFile | None = None
    try:
        config = ConfigFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            _report(doc, (), data, error, ConfigFile)
    _check(doc, data, channels, sources, channel_defaults or runtime_channel_defaults)
    doc.raise_if_any()
    assert config is not None
    _finish(config, doc, channels, sources)
    return config


def runtime_channel_defaults(provider: str) -> Mapping[str, Any]:
    """Settings the runtime supplies when the file leaves them out (for validation only)."""
    return {"path": str(Settings().outbox_path)} if provider == "outbox" else {}


def _report(
    doc: _Doc,
    base: PathT,
    data: Any,
    error: Any,
    model: type[BaseModel],
    *,
    echo: bool = True,
    lifted: Mapping[str, PathT] | None = None,
    owner: str = "",
) -> None:
    """Turn one pydantic error into an issue at its place in the file.

    ``echo``: whether the offending value may be repeated (never for adapter settings,
    which hold secrets). ``lifted``: keys merged into ``data`` from elsewhere in the file,
    with the path to report them at.
    """
    loc = _clean_loc(data, error["loc"])
    path = (*base, *loc)
    if lifted and loc and loc[0] in lifted:
        path = (*lifted[loc[0]], *loc[1:])
        if error["type"] == "extra_forbidden":
            doc.issue(path, f"{owner or model.__name__} takes no {loc[0]}")
            return
    echo = echo and not any(p[: len(path)] == path for p in doc.from_env)
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = _unknown_field(loc, model)
    elif path == ("version",):
        message = (
            f"unsupported config version {value!r} "
            f"(this Order Bell reads version {SUPPORTED_VERSION})"
        )
    elif kind in ("enum", "literal_error") and isinstance(value, str):
        choices = re.findall(r"'([^']*)'", error.get("ctx", {}).get("expected", ""))
        close = difflib.get_close_matches(value, choices, 1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        message = f"unknown value {value!r} ({hint}expected one of: {', '.join(choices)})"
    else:
        message = error["msg"].removeprefix("Value error, ")
        if echo and kind != "value_error" and isinstance(value, str | int | float | bool):
            message += f" (got {value!r})"
    doc.issue(path, message)


def _clean_loc(data: Any, loc: tuple[Any, ...]) -> PathT:
    """The part of a pydantic ``loc`` that names places in the data (drops type tags)."""
    out: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict):
            out.append(part)
            if part not in current:
                break
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
        else:
            break
    return tuple(out)


def _unknown_field(loc: PathT, model: type[BaseModel]) -> str:
    key = loc[-1] if loc else ""
    parent = _model_at(model, loc[:-1])
    fields = list(parent.model_fields) if parent else []
    message = f"unknown field {key!r}"
    if key == "api_keys":
        return message + " (API keys are not kept in this file: use `orderbell keys create`)"
    if close := difflib.get_close_matches(str(key), fields, 1):
        return message + f" (did you mean {close[0]!r}?)"
    if fields:
        return message + f" (expected one of: {', '.join(fields)})"
    return message + " (this takes no settings)" if parent else message


def _model_at(model: type[BaseModel], loc: PathT) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part) if current is not None else None
        current = _inner_model(info.annotation) if info is not None else None
    return current  # type: ignore[no-any-return]


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if found := _inner_model(arg):
            return found
    return None


# ----------------------------------------------------------------------------- checks


def _entries(parent: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    items = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _once(doc: _Doc, seen: dict[Any, int | None], value: Any, path: PathT, what: str) -> None:
    if not isinstance(value, str | int):
        return
    if value in seen:
        doc.issue(path, f"duplicate {what} {value!r} (first at line {seen[value]})")
    else:
        seen[value] = doc.line(path)


def _known(names: Any) -> str:
    return ", ".join(str(n) for n in names) or "none"


def _check(
    doc: _Doc,
    data: Any,
    channel_registry: Mapping[str, Any],
    source_registry: Mapping[str, Any],
    channel_defaults: Callable[[str], Mapping[str, Any]],
) -> None:
    """Checks that span fields: uniqueness, references, registries, template syntax.

    Runs over the plain data, so it reports alongside the per-field errors.
    """
    tenant_slugs: dict[Any, int | None] = {}
    integration_ids: dict[Any, int | None] = {}
    for ti, tenant in _entries(data, "tenants"):
        tp: PathT = ("tenants", ti)
        _once(doc, tenant_slugs, tenant.get("slug"), (*tp, "slug"), "tenant slug")
        locations: dict[Any, int | None] = {}
        for li, location in _entries(tenant, "locations"):
            path = (*tp, "locations", li, "slug")
            _once(doc, locations, location.get("slug"), path, "location slug")
        channels: dict[Any, int | None] = {}
        for ci, channel in _entries(tenant, "channels"):
            cp = (*tp, "channels", ci)
            _once(doc, channels, channel.get("name"), (*cp, "name"), "channel name")
            _check_location(doc, channel, cp, locations)
            provider = channel.get("provider")
            cls = _check_adapter(
                doc,
                channel,
                cp,
                "provider",
                channel_registry,
                defaults=channel_defaults(provider) if isinstance(provider, str) else {},
                lifted=("family",),
            )
            _check_family(doc, channel, cp, cls)
        own_ids = {i.get("id") for _, i in _entries(tenant, "integrations")} | {"api"}
        for ii, integration in _entries(tenant, "integrations"):
            ip = (*tp, "integrations", ii)
            _once(doc, integration_ids, integration.get("id"), (*ip, "id"), "integration id")
            _check_location(doc, integration, ip, locations)
            _check_adapter(doc, integration, ip, "source", source_registry, lifted=("secret",))
            target = integration.get("orders_of")
            if target is not None and (target not in own_ids or target == integration.get("id")):
                doc.issue(
                    (*ip, "orders_of"),
                    f"orders_of must name another integration of this tenant, or 'api' "
                    f"(not {target!r})",
                    None,
                )
        for ri, rule in _entries(tenant, "rules"):
            _check_rule(doc, rule, (*tp, "rules", ri), locations, channels)
        templates: dict[Any, int | None] = {}
        for mi, template in _entries(tenant, "templates"):
            mp = (*tp, "templates", mi)
            name, locale = template.get("name"), template.get("locale", "en")
            if isinstance(name, str) and isinstance(locale, str):
                key = f"{name}/{locale.replace('-', '_')}"
                _once(doc, templates, key, (*mp, "name"), "template (name/locale)")
            _check_template_syntax(doc, template, mp)


def _check_location(doc: _Doc, item: dict[str, Any], path: PathT, locations: Any) -> None:
    slug = item.get("location")
    if isinstance(slug, str) and slug not in locations:
        doc.issue(
            (*path, "location"),
            f"unknown location {slug!r} (locations of this tenant: {_known(locations)})",
        )


def _check_adapter(
    doc: _Doc,
    item: dict[str, Any],
    path: PathT,
    key: str,
    registry: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    lifted: tuple[str, ...] = (),
) -> Any:
    """The adapter class ``item[key]`` names, its settings checked by the class's ``Config``.

    They are checked as the runtime will build them: ``defaults`` under the file's
    settings, and the ``lifted`` item-level fields (an integration's ``secret``, a
    channel's ``family`` when the Config has such a field) over them.
    """
    name = item.get(key)
    if not isinstance(name, str):
        return None
    cls = registry.get(name)
    if cls is None:
        doc.issue((*path, key), f"unknown {key} {name!r} (known: {_known(registry)})")
        return None
    settings = item.get("settings")
    config_model = getattr(cls, "Config", None)
    if not isinstance(settings, dict | None) or config_model is None:
        return cls
    merged = {**(defaults or {}), **(settings or {})}
    lifted_paths: dict[str, PathT] = {}
    for field_name in lifted:
        value = item.get(field_name)
        if field_name in (settings or {}):
            if value is not None:
                doc.issue(
                    (*path, "settings", field_name),
                    f"{field_name} is given twice: keep either `{field_name}:` or this one",
                )
            continue
        lifted_paths[field_name] = (*path, field_name)
        if value is not None and (field_name == "secret" or field_name in _fields(config_model)):
            # as the spec model will hold it (numbers become text)
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            merged[field_name] = str(value) if is_number else value
    try:
        config_model.model_validate(merged)
    except ValidationError as exc:
        for error in exc.errors():
            _report(
                doc,
                (*path, "settings"),
                merged,
                error,
                config_model,
                echo=False,
                lifted=lifted_paths,
                owner=f"{key} {name!r}",
            )
    return cls


def _check_family(doc: _Doc, channel: dict[str, Any], path: PathT, cls: Any) -> None:
    if cls is None:
        return
    family = channel.get("family")
    allowed = getattr(cls, "families", None)
    if isinstance(family, str) and allowed and family not in allowed:
        doc.issue(
            (*path, "family"),
            f"provider {channel['provider']!r} sends {_known(allowed)}, not {family!r}",
        )
    elif family is None and getattr(cls, "family", None) is None:
        doc.issue(path, f"family is required for provider {channel['provider']!r}")


def _check_rule(
    doc: _Doc, rule: dict[str, Any], path: PathT, locations: Any, channels: Any
) -> None:
    _check_location(doc, rule, path, locations)
    audience = rule.get("audience", "guest")
    listed = rule.get("channels")
    listed = list(enumerate(listed)) if isinstance(listed, list) else []
    if isinstance(audience, str) and audience.startswith("staff:"):
        target = audience.removeprefix("staff:")
        if target not in channels:
            doc.issue(
                (*path, "audience"),
                f"unknown channel {target!r} (channels of this tenant: {_known(channels)})",
            )
        for k, name in listed:
            if isinstance(name, str) and name not in channels:
                doc.issue(
                    (*path, "channels", k),
                    f"unknown channel {name!r} (channels of this tenant: {_known(channels)})",
                )
    elif audience == "guest":
        families = [f.value for f in FAMILY_CONTACT]
        for k, name in listed:
            if isinstance(name, str) and name not in families:
                hint = (
                    f"; to post to channel {name!r} use audience: staff:{name}"
                    if name in channels
                    else ""
                )
                doc.issue(
                    (*path, "channels", k),
                    f"{name!r} is not a guest channel family (one of: {_known(families)}){hint}",
                )


def _check_template_syntax(doc: _Doc, template: dict[str, Any], path: PathT) -> None:
    env = SandboxedEnvironment()
    for part in TEMPLATE_PARTS:
        body = template.get(part)
        if not isinstance(body, str):
            continue
        try:
            env.parse(body)
        except TemplateSyntaxError as exc:
            lineno = exc.lineno or 1
            doc.issue(
                (*path, part),
                f"template syntax error (template line {lineno}): {exc.message}",
                line=_body_line(doc, (*path, part), lineno),
            )


def _body_line(doc: _Doc, path: PathT, lineno: int) -> int | None:
    """The file line of line ``lineno`` of the string at ``path``."""
    node = doc.nodes.get(path)
    if node is None:
        return None
    first = node.start_mark.line + 1
    if getattr(node, "style", None) in ("|", ">"):
        first += 1  # the text starts on the line after the indicator
    return min(first + lineno - 1, max(node.end_mark.line + 1, first))


# ----------------------------------------------------------------------------- finishing


def _finish(
    config: ConfigFile,
    doc: _Doc,
    channel_registry: Mapping[str, Any],
    source_registry: Mapping[str, Any],
) -> None:
    """Fill channel families from providers and split settings from secrets."""
    for ti, tenant in enumerate(config.tenants):
        for ci, channel in enumerate(tenant.channels):
            cls = channel_registry[channel.provider]
            if channel.family is None:
                channel.family = ChannelFamily(cls.family)
            base = ("tenants", ti, "channels", ci, "settings")
            channel.settings, channel._secrets = _split(channel.settings, cls, doc, base)
            if "family" in _fields(getattr(cls, "Config", None)) and "family" not in (
                channel.settings.keys() | channel.secrets.keys()
            ):
                # a provider that stands in for several families (the outbox) learns its own
                channel.settings["family"] = channel.family.value
        for ii, integration in enumerate(tenant.integrations):
            cls = source_registry[integration.source]
            base = ("tenants", ti, "integrations", ii, "settings")
            integration.settings, hidden = _split(integration.settings, cls, doc, base)
            if integration.secret is not None:
                hidden["secret"] = integration.secret
            integration._secrets = hidden


def _fields(model: Any) -> Mapping[str, Any]:
    return getattr(model, "model_fields", None) or {}


def _split(
    settings: dict[str, Any], cls: Any, doc: _Doc, base: PathT
) -> tuple[dict[str, Any], dict[str, Any]]:
    secret_fields = tuple(getattr(cls, "secret_fields", ()) or ())
    plain: dict[str, Any] = {}
    hidden: dict[str, Any] = {}
    for key, value in settings.items():
        prefix = (*base, key)
        from_env = any(p[: len(prefix)] == prefix for p in doc.from_env)
        (hidden if key in secret_fields or from_env else plain)[key] = value
    return plain, hidden
