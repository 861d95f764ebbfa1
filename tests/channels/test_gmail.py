"""Gmail specifics beyond the shared contract suite: OAuth2 through google-auth (both
credential kinds, refresh through our client), the MIME message, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from orderbell import __version__
from orderbell.channels.base import OutboundMessage
from orderbell.channels.gmail import GmailChannel
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel, describe
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.gmail import SERVICE_ACCOUNT_EMAIL, FakeGmail, service_account_json
from tests.fakes.process import FakeProcess


@pytest.fixture
async def fake() -> AsyncIterator[FakeGmail]:
    async with FakeGmail() as server:
        yield server


def user_settings(fake: FakeGmail, **changes: Any) -> dict[str, Any]:
    return {
        "from_email": "orders@bistro.example",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "refresh_token": fake.refresh_token,
        "token_uri": fake.token_uri,
        "base_url": fake.base_url,
        **changes,
    }


def sa_settings(fake: FakeGmail, **changes: Any) -> dict[str, Any]:
    return {
        "from_email": "orders@bistro.example",
        "service_account_json": service_account_json(fake),
        "base_url": fake.base_url,
        **changes,
    }


def mail(**kw: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": 8,
        "idempotency_key": "k",
        "to": "guest@example.com",
        "text": "Your order is ready",
        "subject": "Order #8",
    }
    values.update(kw)
    return OutboundMessage(**values)


def sent(fake: FakeGmail, message_id: str | None) -> EmailMessage:
    assert message_id is not None
    return fake.sent[message_id]


async def test_service_account_with_domain_wide_delegation(
    fake: FakeGmail, http: HttpClient
) -> None:
    channel = build_channel("gmail", sa_settings(fake), http)

    result = await channel.send(mail())

    (token_call,) = fake.token_requests
    assert token_call.fields["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    (grant,) = fake.tokens.values()
    assert grant["user"] == "orders@bistro.example"  # the JWT's sub, verified by the fake
    assert grant["scopes"] == {"https://www.googleapis.com/auth/gmail.send"}
    assert sent(fake, result.provider_message_id)["To"] == "guest@example.com"


async def test_delegated_user_overrides_the_sender_as_subject(http: HttpClient) -> None:
    async with FakeGmail(delegated_users="robot@bistro.example") as fake:
        ok = build_channel("gmail", sa_settings(fake, delegated_user="robot@bistro.example"), http)
        await ok.send(mail())
        denied = build_channel("gmail", sa_settings(fake), http)
        with pytest.raises(PermanentSendError) as caught:
            await denied.send(mail())
    assert (caught.value.http_status, caught.value.code) == (401, "unauthorized_client")
    assert "gmail token endpoint" in str(caught.value)


async def test_service_account_key_file(fake: FakeGmail, http: HttpClient, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(service_account_json(fake))
    settings = sa_settings(fake, service_account_file=str(key))
    del settings["service_account_json"]
    await build_channel("gmail", settings, http).send(mail())
    assert fake.last.status == 200


async def test_token_comes_through_our_http_client_and_is_reused(
    fake: FakeGmail, http: HttpClient
) -> None:
    channel = build_channel("gmail", user_settings(fake), http)

    await channel.send(mail())
    await channel.send(mail())
    await channel.send(mail())

    (token_call,) = fake.token_requests
    assert token_call.headers["user-agent"] == f"orderbell/{__version__}"
    assert token_call.fields == {
        "grant_type": "refresh_token",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "refresh_token": fake.refresh_token,
    }
    assert len(fake.requests) == 3
    assert len({r.headers["authorization"] for r in fake.requests}) == 1


async def test_revoked_token_is_refreshed_once_and_the_send_retried(
    fake: FakeGmail, http: HttpClient
) -> None:
    channel = build_channel("gmail", user_settings(fake), http)
    await channel.send(mail())
    fake.expire_tokens()

    result = await channel.send(mail())

    assert [r.status for r in fake.requests] == [200, 401, 200]
    assert len(fake.token_requests) == 2
    assert result.http_status == 200


async def test_revoked_refresh_token_is_permanent_invalid_grant(
    fake: FakeGmail, http: HttpClient
) -> None:
    channel = build_channel("gmail", user_settings(fake, refresh_token="1//revoked"), http)
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(mail())
    assert (caught.value.http_status, caught.value.code) == (400, "invalid_grant")
    assert fake.requests == []
    assert "1//revoked" not in str(caught.value)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_token_endpoint_outage_is_transient_without_sleeping(
    fake: FakeGmail, http: HttpClient, status: int
) -> None:
    fake.fail_token_next(1, status)
    channel = build_channel("gmail", user_settings(fake), http)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(TransientSendError) as caught:
        await channel.send(mail())

    assert caught.value.http_status == status
    assert loop.time() - started < 0.9  # not google-auth's own backoff (about 1 s, 2 s)
    assert len(fake.token_requests) == 1 and fake.requests == []
    await channel.send(mail())  # the next attempt gets a token
    assert fake.last.status == 200


async def test_token_endpoint_unreachable_is_transient(fake: FakeGmail, http: HttpClient) -> None:
    channel = build_channel(
        "gmail", user_settings(fake, token_uri="http://127.0.0.1:9/token"), http
    )
    with pytest.raises(TransientSendError, match="cannot connect"):
        await channel.send(mail())


async def test_mime_text_and_html(fake: FakeGmail, http: HttpClient) -> None:
    channel = build_channel(
        "gmail", user_settings(fake, from_name="Café Zoë", reply_to="help@bistro.example"), http
    )
    result = await channel.send(
        mail(
            subject="Pedido #8 ✓ listo",
            html="<p>¡Listo!</p>",
            metadata={"header:List-Unsubscribe": "<https://bistro.example/u/8>", "order_id": "8"},
        )
    )
    message = sent(fake, result.provider_message_id)
    assert message["Subject"] == "Pedido #8 ✓ listo"
    assert message["From"] == "Café Zoë <orders@bistro.example>"
    assert message["Reply-To"] == "help@bistro.example"
    assert message["List-Unsubscribe"] == "<https://bistro.example/u/8>"
    assert message["Message-ID"].startswith("<orderbell.8.")
    assert message["Message-ID"].endswith("@bistro.example>")
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert html.get_content().strip() == "<p>¡Listo!</p>"


async def test_mime_single_part(fake: FakeGmail, http: HttpClient) -> None:
    channel = build_channel("gmail", user_settings(fake), http)
    text_only = await channel.send(mail())
    html_only = await channel.send(mail(text="", html="<p>Ready</p>"))
    assert sent(fake, text_only.provider_message_id).get_content_type() == "text/plain"
    assert sent(fake, html_only.provider_message_id).get_content_type() == "text/html"


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"header:X-Note": "a\r\nBcc: evil@example.com"}, "cannot build the email"),
        ({"header:Bcc": "evil@example.com"}, "reserved"),
        ({"header:Bad Name": "x"}, "invalid"),
    ],
)
async def test_unsafe_headers_fail_before_any_request(
    fake: FakeGmail, http: HttpClient, metadata: dict[str, str], match: str
) -> None:
    with pytest.raises(PermanentSendError, match=match):
        await build_channel("gmail", user_settings(fake), http).send(mail(metadata=metadata))
    assert fake.requests == [] and fake.token_requests == []


@pytest.mark.parametrize("reason", ["userRateLimitExceeded", "rateLimitExceeded"])
async def test_rate_limit_403_is_transient_with_its_retry_time(
    fake: FakeGmail, http: HttpClient, reason: str
) -> None:
    fake.fail_next(
        1,
        403,
        body={
            "error": {
                "code": 403,
                "message": "User-rate limit exceeded. Retry after 2099-01-01T00:00:00.000Z",
                "errors": [
                    {
                        "message": "User-rate limit exceeded.",
                        "domain": "usageLimits",
                        "reason": reason,
                    }
                ],
                "status": "PERMISSION_DENIED",
            }
        },
    )
    with pytest.raises(TransientSendError) as caught:
        await build_channel("gmail", user_settings(fake), http).send(mail())
    assert caught.value.code == reason
    assert caught.value.retry_after is not None and caught.value.retry_after > 3600


async def test_insufficient_scope_is_permanent(fake: FakeGmail, http: HttpClient) -> None:
    channel = build_channel("gmail", user_settings(fake), http)
    await channel.send(mail())
    for grant in fake.tokens.values():
        grant["scopes"] = {"https://www.googleapis.com/auth/gmail.readonly"}
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(mail())
    assert (caught.value.http_status, caught.value.code) == (403, "ACCESS_TOKEN_SCOPE_INSUFFICIENT")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, None),
        ({"client_id": "c", "client_secret": "s"}, None),
        ({"service_account_json": "{}"}, "service_account_json"),
        ({"service_account_json": '{"type": "authorized_user"}'}, "service_account_json"),
        (
            {
                "client_id": "c",
                "client_secret": "s",
                "refresh_token": "r",
                "delegated_user": "a@b.example",
            },
            None,
        ),
        (
            {"client_id": "c", "client_secret": "s", "refresh_token": "r", "token_uri": "ftp://x"},
            "token_uri",
        ),
    ],
)
def test_bad_settings(settings: dict[str, Any], field: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        build_channel("gmail", {"from_email": "orders@bistro.example", **settings}, HttpClient())
    assert caught.value.field == field


def test_unreadable_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_channel(
            "gmail",
            {"from_email": "o@bistro.example", "service_account_file": str(tmp_path / "none.json")},
            HttpClient(),
        )
    assert caught.value.field == "service_account_file"


def test_broken_private_key_is_a_config_error() -> None:
    key = {
        "type": "service_account",
        "client_email": SERVICE_ACCOUNT_EMAIL,
        "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    with pytest.raises(ConfigError, match="cannot be read"):
        build_channel(
            "gmail",
            {"from_email": "o@bistro.example", "service_account_json": json.dumps(key)},
            HttpClient(),
        )


def test_description_masks_credentials() -> None:
    info = describe("gmail")
    fields = {f["name"]: f for f in info["fields"]}
    assert all(fields[name]["secret"] for name in GmailChannel.secret_fields)
    assert info["rate_limit_per_second"] == 2.5


def test_fake_serves_from_a_thread() -> None:
    with FakeGmail() as fake:

        async def go() -> None:
            async with HttpClient() as http:
                await build_channel("gmail", user_settings(fake), http).send(mail())

        asyncio.run(go())
        assert fake.last.status == 200


async def test_fake_serves_as_a_process(http: HttpClient) -> None:
    with FakeProcess("gmail", refresh_token="1//process") as proc:
        channel = build_channel(
            "gmail",
            {
                "from_email": "orders@bistro.example",
                "client_id": "1234567890-fake.apps.googleusercontent.com",
                "client_secret": "GOCSPX-fake-client-secret-0001",
                "refresh_token": "1//process",
                "token_uri": f"{proc.base_url}/token",
                "base_url": proc.base_url,
            },
            http,
        )
        await channel.send(mail())
        (recorded,) = proc.requests()
    assert recorded["status"] == 200


def test_google_auth_is_not_imported_with_the_module() -> None:
    import subprocess
    import sys

    code = "import sys, orderbell.channels.gmail; print('google.auth' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
