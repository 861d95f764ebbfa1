from __future__ import annotations

import base64
import re
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from orderbell.domain.model import ChannelFamily, Fulfillment, Purpose, Rule, Trigger
from orderbell.domain.policy import DEFAULT_RULES
from orderbell.engine import configfile
from orderbell.engine.configfile import (
    ConfigFile,
    default_rules,
    load_config,
    parse_config,
    parse_duration,
    sample_config,
)
from orderbell.errors import ConfigError

# ----------------------------------------------------------------------------- fakes


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutboxConfig(_Config):
    path: str  # filled in by the runtime (see runtime_channel_defaults)
    family: ChannelFamily = ChannelFamily.SMS


class TwilioConfig(_Config):
    account_sid: str
    auth_token: str
    from_number: str
    base_url: str = "https://api.twilio.com"


class SendgridConfig(_Config):
    api_key: str
    from_email: str


class SlackConfig(_Config):
    webhook_url: str


class Outbox:
    provider: ClassVar[str] = "outbox"
    family: ClassVar[ChannelFamily] = ChannelFamily.SMS
    Config = OutboxConfig
    secret_fields: ClassVar[tuple[str, ...]] = ()


class TwilioSms:
    provider = "twilio_sms"
    family = ChannelFamily.SMS
    Config = TwilioConfig
    secret_fields = ("auth_token",)


class Sendgrid:
    provider = "sendgrid"
    family = ChannelFamily.EMAIL
    Config = SendgridConfig
    secret_fields = ("api_key",)


class Slack:
    provider = "slack"
    family = ChannelFamily.CHAT
    Config = SlackConfig
    secret_fields = ("webhook_url",)


class GenericConfig(_Config):
    secret: str
    tolerance_seconds: int = 300


class Generic:
    name = "generic"
    Config = GenericConfig
    secret_fields = ("secret",)


class ShopifyConfig(_Config):
    shop_domain: str
    secret: str
    api_token: str | None = None


class Shopify:
    name = "shopify"
    Config = ShopifyConfig
    secret_fields = ("secret", "api_token")


class PollConfig(_Config):
    url: str


class Poll:
    """A source that takes no signing secret."""

    name = "poll"
    Config = PollConfig
    secret_fields = ()


CHANNELS: dict[str, Any] = {"outbox": Outbox, "twilio_sms": TwilioSms, "sendgrid": Sendgrid}
SOURCES: dict[str, Any] = {"generic": Generic}
ALL_CHANNELS: dict[str, Any] = {**CHANNELS, "slack": Slack}
ALL_SOURCES: dict[str, Any] = {**SOURCES, "shopify": Shopify, "poll": Poll}


def parse(text: str, env: dict[str, str] | None = None) -> ConfigFile:
    return parse_config(
        textwrap.dedent(text),
        filename="orderbell.yaml",
        env=env or {},
        channels=ALL_CHANNELS,
        sources=ALL_SOURCES,
    )


def error_of(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return info.value


BASE = """\
version: 1
tenants:
  - slug: demo
    name: Demo
    locations:
      - slug: downtown
        name: Downtown
    channels:
      - name: sms
        provider: outbox
      - name: email
        provider: outbox
        family: email
"""

# ----------------------------------------------------------------------------- the sample


def test_sample_loads_with_no_environment() -> None:
    config = parse_config(
        sample_config("whsec_c2FtcGxl"),
        filename="orderbell.yaml",
        env={},
        channels=CHANNELS,
        sources=SOURCES,
    )
    (tenant,) = config.tenants
    assert tenant.slug == "demo"
    (location,) = tenant.locations
    assert (location.timezone, location.locale, location.currency) == (
        "America/New_York",
        "en",
        "USD",
    )
    assert location.phone == "+12125550100"
    (integration,) = tenant.integrations
    assert (integration.id, integration.source, integration.location) == (
        "demo-generic",
        "generic",
        "downtown",
    )
    assert integration.secrets == {"secret": "whsec_c2FtcGxl"}
    assert [(c.name, c.provider, c.family) for c in tenant.channels] == [
        ("sms", "outbox", ChannelFamily.SMS),
        ("email", "outbox", ChannelFamily.EMAIL),
    ]
    assert tenant.rules is not None
    assert [r.to_rule() for r in tenant.rules] == [r.to_rule() for r in default_rules()]


def test_sample_webhook_secret_comes_from_the_environment_when_set() -> None:
    config = parse_config(
        sample_config(),
        env={"ORDERBELL_DEMO_WEBHOOK_SECRET": "whsec_ZnJvbWVudg=="},
        channels=CHANNELS,
        sources=SOURCES,
    )
    assert config.tenants[0].integrations[0].secret == "whsec_ZnJvbWVudg=="


def test_sample_gets_a_fresh_standard_webhooks_secret() -> None:
    first, second = sample_config(), sample_config()
    assert first != second
    secret = parse_config(first, env={}, channels=CHANNELS, sources=SOURCES)
    value = secret.tenants[0].integrations[0].secret
    assert value is not None and value.startswith("whsec_")
    assert len(base64.b64decode(value.removeprefix("whsec_"), validate=True)) == 24


def uncomment_examples(text: str) -> str:
    """Uncomment the sample's example blocks: commented YAML starting "- " or "templates:"."""
    out: list[str] = []
    block: str | None = None
    for line in text.splitlines():
        match = re.fullmatch(r"( {4,})# (.*)", line)
        if match:
            indent, body = match.groups()
            if body.startswith(("- ", "templates:")) or (block == indent and body[:1] == " "):
                block = indent
                out.append(indent + body)
                continue
        block = None
        out.append(line)
    return "\n".join(out) + "\n"


def test_sample_commented_examples_load_when_uncommented() -> None:
    text = uncomment_examples(sample_config("whsec_c2FtcGxl"))
    assert "provider: twilio_sms" in text.replace("# ", "X")
    config = parse_config(
        text,
        env={
            "TWILIO_AUTH_TOKEN": "t" * 32,
            "SENDGRID_API_KEY": "SG.x",
            "KITCHEN_SLACK_WEBHOOK_URL": "u",
        },
        channels=ALL_CHANNELS,
        sources=SOURCES,
    )
    tenant = config.tenants[0]
    assert [c.name for c in tenant.channels] == ["sms", "email", "twilio", "sendgrid", "kitchen"]
    assert tenant.channels[2].secrets == {"auth_token": "t" * 32}
    assert [(t.name, t.locale) for t in tenant.templates] == [("ready", "en"), ("ready", "es")]
    assert tenant.rules is not None and tenant.rules[-1].audience == "staff:kitchen"


def test_default_rules_are_the_policys() -> None:
    assert tuple(r.to_rule() for r in default_rules()) == DEFAULT_RULES


def test_sample_commented_rules_are_valid() -> None:
    config = parse_config(
        uncomment_examples(sample_config("whsec_c2FtcGxl")),
        env={"TWILIO_AUTH_TOKEN": "t", "SENDGRID_API_KEY": "k", "KITCHEN_SLACK_WEBHOOK_URL": "u"},
        channels=ALL_CHANNELS,
        sources=SOURCES,
    )
    rules = config.tenants[0].rules
    assert rules is not None
    feedback = next(r for r in rules if r.trigger == Trigger.FEEDBACK)
    assert (feedback.purpose, feedback.delay, feedback.expires_after) == (
        Purpose.FOLLOWUP,
        3600,
        86400,
    )


def test_tenant_without_rules_gets_the_defaults() -> None:
    tenant = parse(BASE).tenants[0]
    assert tenant.rules is None
    assert [r.to_rule() for r in tenant.effective_rules()] == [r.to_rule() for r in default_rules()]


# ----------------------------------------------------------------------------- errors

# (snippet appended to BASE's tenant or replacing it, line, field, message part)
TENANT_ERRORS = [
    (
        "    integrations:\n      - id: a\n        source: shopfy\n",
        16,
        "tenants[0].integrations[0].source",
        "unknown source 'shopfy' (known: generic, shopify, poll)",
    ),
    (
        "    rules:\n      - trigger: ready\n        audience: staff:kitchen\n",
        16,
        "tenants[0].rules[0].audience",
        "unknown channel 'kitchen' (channels of this tenant: sms, email)",
    ),
    (
        "    rules:\n      - trigger: ready\n        channels: [sms, pigeon]\n",
        16,
        "tenants[0].rules[0].channels[1]",
        "'pigeon' is not a guest channel family",
    ),
    (
        "    rules:\n      - trigger: ready\n        location: uptown\n",
        16,
        "tenants[0].rules[0].location",
        "unknown location 'uptown' (locations of this tenant: downtown)",
    ),
    (
        "    rules:\n      - trigger: reddy\n",
        15,
        "tenants[0].rules[0].trigger",
        "unknown value 'reddy' (did you mean 'ready'?",
    ),
    (
        "    rules:\n      - trigger: ready\n        delay: soon\n",
        16,
        "tenants[0].rules[0].delay",
        "'soon' is not a duration",
    ),
    (
        "    rules:\n      - trigger: ready\n        chanels: [sms]\n",
        16,
        "tenants[0].rules[0].chanels",
        "unknown field 'chanels' (did you mean 'channels'?)",
    ),
    (
        "    rules:\n      - trigger: ready\n        audience: kitchen\n",
        16,
        "tenants[0].rules[0].audience",
        "audience must be 'guest' or 'staff:<channel name>'",
    ),
    (
        "    templates:\n      - name: ready\n        text: |\n          Hello\n"
        "          {{ order.number }\n",
        18,
        "tenants[0].templates[0].text",
        "template syntax error (template line 2): unexpected '}'",
    ),
    (
        '    templates:\n      - name: ready\n        subject: "{% if x %}open"\n',
        16,
        "tenants[0].templates[0].subject",
        "template syntax error",
    ),
    (
        "    templates:\n      - name: ready\n        locale: en\n",
        15,
        "tenants[0].templates[0]",
        "a template needs at least one of: text, subject, html, voice",
    ),
    (
        "    templates:\n      - {name: ready, text: a}\n      - {name: ready, text: b}\n",
        16,
        "tenants[0].templates[1].name",
        "duplicate template (name/locale) 'ready/en' (first at line 15)",
    ),
    (
        "    api_keys: []\n",
        14,
        "tenants[0].api_keys",
        "API keys are not kept in this file",
    ),
]


@pytest.mark.parametrize(("extra", "line", "field", "message"), TENANT_ERRORS)
def test_tenant_errors_name_file_line_and_field(
    extra: str, line: int, field: str, message: str
) -> None:
    error = error_of(BASE + extra)
    assert (error.file, error.line, error.field) == ("orderbell.yaml", line, field)
    assert message in error.detail
    assert str(error).startswith(f"orderbell.yaml:{line} {field}: ")


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        (
            "        provider: outbox\n      - name: email",
            "        provider: twilo\n      - name: email",
            10,
            "tenants[0].channels[0].provider",
            "unknown provider 'twilo' (known: outbox, twilio_sms, sendgrid, slack)",
        ),
        (
            "        name: Downtown\n",
            "        name: Downtown\n        timezone: America/New_Yrok\n",
            8,
            "tenants[0].locations[0].timezone",
            "unknown time zone 'America/New_Yrok' (did you mean 'America/New_York'?)",
        ),
        (
            "        name: Downtown\n",
            "        name: Downtown\n        locale: xx_YY\n",
            8,
            "tenants[0].locations[0].locale",
            "unknown locale 'xx_YY'",
        ),
        (
            "        name: Downtown\n",
            "        name: Downtown\n        currency: DOLLARS\n",
            8,
            "tenants[0].locations[0].currency",
            "unknown currency 'DOLLARS'",
        ),
        (
            "        name: Downtown\n",
            "        name: Downtown\n        quiet_hours: {start: '25:00'}\n",
            8,
            "tenants[0].locations[0].quiet_hours.start",
            "'25:00' is not a time of day",
        ),
        (
            "  - slug: demo\n",
            "  - slug: Demo Co\n",
            3,
            "tenants[0].slug",
            "'Demo Co' is not a valid slug",
        ),
        (
            "    name: Demo\n",
            "",
            3,
            "tenants[0].name",
            "required field is missing",
        ),
        (
            "      - name: email",
            "      - name: sms",
            11,
            "tenants[0].channels[1].name",
            "duplicate channel name 'sms' (first at line 9)",
        ),
        (
            "        family: email\n",
            "        family: mail\n",
            13,
            "tenants[0].channels[1].family",
            "unknown value 'mail' (did you mean 'email'?",
        ),
        (
            "        family: email\n",
            "        family: email\n        location: uptown\n",
            14,
            "tenants[0].channels[1].location",
            "unknown location 'uptown'",
        ),
        (
            "version: 1\n",
            "version: 2\n",
            1,
            "version",
            "unsupported config version 2 (this Order Bell reads version 1)",
        ),
        (
            "tenants:\n",
            "tenant:\n",
            2,
            "tenant",
            "unknown field 'tenant' (did you mean 'tenants'?)",
        ),
    ],
)
def test_field_errors_name_file_line_and_field(
    old: str, new: str, line: int, field: str, message: str
) -> None:
    assert old in BASE
    error = error_of(BASE.replace(old, new, 1))
    assert (error.file, error.line, error.field) == ("orderbell.yaml", line, field)
    assert message in error.detail


def test_duplicate_location_slug() -> None:
    text = BASE.replace(
        "    channels:\n",
        "      - slug: downtown\n        name: Again\n    channels:\n",
    )
    error = error_of(text)
    assert (error.line, error.field) == (8, "tenants[0].locations[1].slug")
    assert "duplicate location slug 'downtown' (first at line 6)" in error.detail


def test_duplicate_tenant_slug_and_integration_id_across_tenants() -> None:
    tenant = (
        "  - slug: demo\n    name: Demo\n    integrations:\n"
        "      - {id: shared, source: generic, secret: whsec_x}\n"
    )
    error = error_of("version: 1\ntenants:\n" + tenant + tenant)
    assert [(i.line, i.field) for i in error.issues] == [
        (7, "tenants[1].slug"),
        (10, "tenants[1].integrations[0].id"),
    ]
    assert "duplicate tenant slug 'demo' (first at line 3)" in str(error)
    assert "duplicate integration id 'shared' (first at line 6)" in str(error)


def test_provider_settings_are_checked_by_the_provider_config() -> None:
    text = BASE + (
        "      - name: twilio\n"
        "        provider: twilio_sms\n"
        "        settings:\n"
        "          account_sid: AC123\n"
        "          auth_tokn: x\n"
    )
    error = error_of(text)
    got = {(i.line, i.field, i.message) for i in error.issues}
    assert got == {
        (16, "tenants[0].channels[2].settings.auth_token", "required field is missing"),
        (16, "tenants[0].channels[2].settings.from_number", "required field is missing"),
        (
            18,
            "tenants[0].channels[2].settings.auth_tokn",
            "unknown field 'auth_tokn' (did you mean 'auth_token'?)",
        ),
    }


def test_source_settings_are_checked_by_the_source_config() -> None:
    text = BASE + (
        "    integrations:\n"
        "      - id: shop\n"
        "        source: generic\n"
        "        secret: whsec_x\n"
        "        settings: {tolerance_seconds: soon}\n"
    )
    error = error_of(text)
    assert (error.line, error.field) == (
        18,
        "tenants[0].integrations[0].settings.tolerance_seconds",
    )
    assert "valid integer" in error.detail


def test_all_errors_are_collected_in_one_config_error() -> None:
    text = BASE.replace(
        "provider: outbox\n      - name: email", "provider: twilo\n      - name: email"
    )
    text = text.replace(
        "        name: Downtown\n", "        name: Downtown\n        timezone: Mars/Base\n"
    )
    text += "    rules:\n      - trigger: reddy\n"
    error = error_of(text)
    lines = str(error).splitlines()
    assert lines[0] == "3 problems in orderbell.yaml:"
    assert [line.split(" ")[0] for line in lines[1:]] == [
        "orderbell.yaml:8",
        "orderbell.yaml:11",
        "orderbell.yaml:16",
    ]
    assert (error.file, error.line, error.field) == (
        "orderbell.yaml",
        8,
        "tenants[0].locations[0].timezone",
    )
    assert len(error.issues) == 3


def test_yaml_syntax_error_names_the_line() -> None:
    error = error_of("version: 1\ntenants:\n  - slug: demo\n    name: [unclosed\n")
    assert error.file == "orderbell.yaml"
    assert error.line is not None and error.line >= 4
    assert "invalid YAML" in error.detail


def test_unquoted_env_reference_in_a_flow_mapping_gets_a_hint() -> None:
    error = error_of(BASE + "        settings: {path: ${OUTBOX}, x: 1}\n")
    assert error.line == 14
    assert 'write ${...} in quotes: "${VAR}"' in error.detail


def test_duplicate_keys_are_errors() -> None:
    error = error_of(BASE.replace("    name: Demo\n", "    name: Demo\n    name: Again\n"))
    assert (error.line, error.field) == (5, "tenants[0].name")
    assert "duplicate key 'name'" in error.detail


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the file is empty"), ("- 1\n", "must be a mapping"), ("{}\n", "version")],
)
def test_degenerate_files(text: str, message: str) -> None:
    assert message in str(error_of(text))


def test_unknown_yaml_tag_is_an_error() -> None:
    error = error_of(BASE.replace("name: Demo", "name: !env DEMO"))
    assert (error.line, error.field) == (4, "tenants[0].name")
    assert "cannot read this value" in error.detail


def test_load_config_reads_the_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "orderbell.yaml"
    path.write_text(BASE, encoding="utf-8")
    config = load_config(path, env={}, channels=ALL_CHANNELS, sources=ALL_SOURCES)
    assert config.tenants[0].slug == "demo"

    path.write_text(BASE.replace("provider: outbox", "provider: nope", 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={}, channels=ALL_CHANNELS, sources=ALL_SOURCES)
    assert str(info.value).startswith(f"{path}:10 tenants[0].channels[0].provider: ")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml", env={})


def test_default_registries_are_the_real_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from orderbell.channels import registry as channel_registry
    from orderbell.sources import registry as source_registry

    monkeypatch.setattr(channel_registry, "CHANNELS", {"outbox": Outbox})
    monkeypatch.setattr(source_registry, "SOURCES", {})
    parse_config(BASE, env={})
    with pytest.raises(ConfigError, match=r"unknown source 'generic' \(known: none\)"):
        parse_config(BASE + "    integrations: [{id: a, source: generic, secret: x}]\n", env={})


# ----------------------------------------------------------------------------- env


def test_env_interpolation() -> None:
    text = BASE.replace("name: Downtown", "name: ${SITE} (${CITY:-Springfield})").replace(
        "    name: Demo", '    name: "$${NOT_A_VAR} ${EMPTY:-fallback} ${{ jinja }}"'
    )
    config = parse(text, {"SITE": "Main St", "EMPTY": ""})
    assert config.tenants[0].locations[0].name == "Main St (Springfield)"
    assert config.tenants[0].name == "${NOT_A_VAR} fallback ${{ jinja }}"


def test_env_values_are_typed_by_the_field() -> None:
    text = BASE.replace(
        "        family: email\n", "        family: email\n        priority: ${P}\n"
    )
    assert parse(text, {"P": "7"}).tenants[0].channels[1].priority == 7


def test_missing_env_var_names_the_variable_and_line() -> None:
    text = BASE.replace("name: Downtown", "name: ${SITE_NAME}")
    error = error_of(text)
    assert (error.line, error.field) == (7, "tenants[0].locations[0].name")
    assert "environment variable SITE_NAME is not set" in error.detail


def test_every_missing_env_var_is_reported() -> None:
    text = BASE.replace("name: Downtown", "name: ${A}").replace("name: Demo", "name: ${B}")
    error = error_of(text)
    assert [i.message.split(" is ")[0] for i in error.issues] == [
        "environment variable B",
        "environment variable A",
    ]


# ----------------------------------------------------------------------------- secrets


def test_secrets_are_split_from_settings() -> None:
    text = BASE + (
        "      - name: twilio\n"
        "        provider: twilio_sms\n"
        "        settings:\n"
        "          account_sid: ${TWILIO_SID}\n"
        "          auth_token: literal-token\n"
        '          from_number: "+12125550199"\n'
        "    integrations:\n"
        "      - id: shop-1\n"
        "        source: shopify\n"
        "        location: downtown\n"
        "        secret: ${SHOP_SECRET}\n"
        "        settings:\n"
        "          shop_domain: demo.myshopify.com\n"
        "          api_token: s3cret\n"
    )
    config = parse(text, {"TWILIO_SID": "AC123", "SHOP_SECRET": "whsec"})
    tenant = config.tenants[0]
    twilio = tenant.channels[2]
    assert twilio.family == ChannelFamily.SMS
    assert twilio.settings == {"from_number": "+12125550199"}
    assert twilio.secrets == {"account_sid": "AC123", "auth_token": "literal-token"}
    shop = tenant.integrations[0]
    assert shop.settings == {"shop_domain": "demo.myshopify.com"}
    assert shop.secrets == {"api_token": "s3cret", "secret": "whsec"}
    # the source's config is rebuilt from both halves, as the webhook service does
    assert ShopifyConfig(**shop.settings, **shop.secrets).secret == "whsec"
    assert "whsec" not in repr(shop)
    assert "literal-token" not in repr(twilio)
    # the channel's config is rebuilt from both halves
    assert TwilioConfig(**twilio.settings, **twilio.secrets).auth_token == "literal-token"


def test_family_defaults_to_the_providers() -> None:
    channels = parse(BASE).tenants[0].channels
    assert [c.family for c in channels] == [ChannelFamily.SMS, ChannelFamily.EMAIL]
    # the outbox stands in for any family: its settings say which
    assert [c.settings for c in channels] == [{"family": "sms"}, {"family": "email"}]


def test_runtime_defaults_are_used_to_validate_but_not_stored() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            BASE,
            filename="orderbell.yaml",
            env={},
            channels=CHANNELS,
            sources=SOURCES,
            channel_defaults=lambda provider: {},
        )
    assert [(i.line, i.field) for i in info.value.issues] == [
        (9, "tenants[0].channels[0].settings.path"),
        (11, "tenants[0].channels[1].settings.path"),
    ]
    config = parse_config(
        BASE,
        env={},
        channels=CHANNELS,
        sources=SOURCES,
        channel_defaults=lambda provider: {"path": "/tmp/x.jsonl"},
    )
    assert "path" not in config.tenants[0].channels[0].settings


def test_integration_secret_is_checked_by_the_source() -> None:
    missing = error_of(BASE + "    integrations:\n      - id: a\n        source: generic\n")
    assert (missing.line, missing.field) == (15, "tenants[0].integrations[0].secret")
    assert missing.detail == "required field is missing"

    unwanted = error_of(
        BASE + "    integrations:\n      - {id: a, source: poll, secret: s, settings: {url: u}}\n"
    )
    assert (unwanted.line, unwanted.field) == (15, "tenants[0].integrations[0].secret")
    assert unwanted.detail == "source 'poll' takes no secret"

    twice = error_of(
        BASE
        + "    integrations:\n      - {id: a, source: generic, secret: s, settings: {secret: t}}\n"
    )
    assert twice.field == "tenants[0].integrations[0].settings.secret"
    assert "given twice" in twice.detail


def test_adapter_errors_never_repeat_the_value() -> None:
    text = BASE + (
        "    integrations:\n"
        "      - {id: a, source: generic, secret: 12345, settings: {tolerance_seconds: hunter2}}\n"
    )
    error = error_of(text)
    assert error.field == "tenants[0].integrations[0].settings.tolerance_seconds"
    assert "hunter2" not in str(error)


def test_sample_loads_with_the_real_registries() -> None:
    from orderbell.channels.registry import CHANNELS as real_channels
    from orderbell.sources.registry import SOURCES as real_sources

    if "outbox" not in real_channels or "generic" not in real_sources:
        pytest.skip("the real outbox channel or generic source is not registered yet")
    config = parse_config(sample_config(), env={})
    assert [c.name for c in config.tenants[0].channels] == ["sms", "email"]


def test_provider_with_several_families_checks_the_family() -> None:
    class Multi:
        provider = "multi"
        family = ChannelFamily.SMS
        families = ("sms", "whatsapp")
        Config = OutboxConfig
        secret_fields = ()

    text = BASE.replace(
        "provider: outbox\n        family: email", "provider: multi\n        family: email"
    )
    with pytest.raises(ConfigError, match="provider 'multi' sends sms, whatsapp, not 'email'"):
        parse_config(text, env={}, channels={**CHANNELS, "multi": Multi}, sources=SOURCES)


# ----------------------------------------------------------------------------- YAML details


def test_yaml_1_1_surprises_stay_strings() -> None:
    text = BASE.replace(
        "        name: Downtown\n",
        "        name: Downtown\n"
        "        locale: no\n"
        "        phone: +4722000000\n"
        "        address: 0123\n"
        "        quiet_hours: {start: 21:30, end: 7:00}\n",
    )
    location = parse(text).tenants[0].locations[0]
    assert location.locale == "no"
    assert location.phone == "+4722000000"
    assert location.address == "0123"
    assert (location.quiet_hours.start, location.quiet_hours.end) == ("21:30", "07:00")


def test_anchors_live_under_x_keys_and_merge() -> None:
    text = (
        "version: 1\n"
        "x-site: &site {timezone: Europe/Paris, locale: fr, currency: EUR}\n"
        "tenants:\n"
        "  - slug: demo\n"
        "    name: Demo\n"
        "    locations:\n"
        "      - <<: *site\n"
        "        slug: paris\n"
        "        name: Paris\n"
        "      - <<: *site\n"
        "        slug: lyon\n"
        "        name: Lyon\n"
        "        currency: CHF\n"
    )
    paris, lyon = parse(text).tenants[0].locations
    assert (paris.timezone, paris.currency) == ("Europe/Paris", "EUR")
    assert (lyon.locale, lyon.currency) == ("fr", "CHF")


def test_locale_is_normalised() -> None:
    text = BASE.replace(
        "        name: Downtown\n", "        name: Downtown\n        locale: pt-BR\n"
    )
    assert parse(text).tenants[0].locations[0].locale == "pt_BR"


# ----------------------------------------------------------------------------- conversions


def test_rule_and_location_convert_to_domain_values() -> None:
    text = BASE + (
        "    rules:\n"
        "      - trigger: ready\n"
        "        fulfillment: pickup\n"
        "        channels: [sms, email]\n"
        "        delay: 90s\n"
        "        expires_after: 1h30m\n"
        "      - trigger: delayed\n"
        "        audience: staff:sms\n"
        "        enabled: no\n"
    )
    tenant = parse(text).tenants[0]
    assert tenant.rules is not None
    assert tenant.rules[0].to_rule() == Rule(
        trigger=Trigger.READY,
        fulfillment=Fulfillment.PICKUP,
        channels=("sms", "email"),
        delay_seconds=90,
        expires_after_seconds=5400,
    )
    assert tenant.rules[1].to_rule().enabled is False
    location = tenant.locations[0].to_location()
    assert (location.name, location.quiet_start, location.quiet_end) == (
        "Downtown",
        "20:00",
        "08:00",
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        ("0", 0),
        ("45", 45),
        (45, 45),
        (" 2H ", 7200),
    ],
)
def test_parse_duration(value: str | int, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "-5m", -1, True, 1.5, "5 minutes", "m5", "5y"])
def test_parse_duration_refuses(value: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_module_exports() -> None:
    for name in (
        "load_config",
        "parse_config",
        "sample_config",
        "parse_duration",
        "ConfigFile",
        "TenantSpec",
        "LocationSpec",
        "IntegrationSpec",
        "ChannelSpec",
        "RuleSpec",
        "TemplateSpec",
        "QuietHours",
        "ConfigIssue",
        "default_rules",
    ):
        assert hasattr(configfile, name)
