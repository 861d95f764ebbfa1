"""The staff dashboard over the real app: sign-in, sessions that expire, CSRF on every
form, the live board, the order page and its timeline, search, the guest page with its
consent history and opt-out, template preview and figures."""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from orderbell.store import tables
from tests.engine.harness import GUEST, PHONE, App, rows
from tests.web.dashboard_kit import (  # noqa: F401
    PASSWORD,
    add_staff,
    as_member,
    client_fixture,
    csrf_of,
    location_id,
    sign_in,
    web_fixture,
)

# -- signing in -----------------------------------------------------------------------------


async def test_sign_in_sets_a_safe_session_cookie(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    await add_staff(web, "ana@bistro.example", name="Ana Ruiz")
    form = await client.get("/dashboard/sign-in")
    assert form.status_code == 200
    assert 'lang="en"' in form.text
    assert "SameSite=strict" in form.headers["set-cookie"].replace("samesite", "SameSite")
    done = await client.post(
        "/dashboard/sign-in",
        data={
            "email": "Ana@Bistro.example",
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
        },
    )
    assert done.status_code == 303
    cookie = done.headers["set-cookie"]
    lowered = cookie.lower()
    assert "ob_session=" in cookie and "httponly" in lowered and "samesite=lax" in lowered
    assert "path=/dashboard" in lowered and "secure" not in lowered  # public URL is http
    board = await client.get("/dashboard", follow_redirects=True)
    assert board.status_code == 200 and "Bistro Downtown" in board.text
    assert "Ana Ruiz" in board.text
    assert board.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in board.headers["content-security-policy"]


async def test_secure_cookie_when_the_public_url_is_https(app: App) -> None:
    from orderbell.web.app import create_app

    app.container.settings = app.container.settings.with_(public_url="https://bell.example")
    web = create_app(app.container)
    await add_staff(web, "sec@bistro.example")
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="https://bell.example") as c:
        form = await c.get("/dashboard/sign-in")
        done = await c.post(
            "/dashboard/sign-in",
            data={
                "email": "sec@bistro.example",
                "password": PASSWORD,
                "csrf_token": csrf_of(form.text),
            },
        )
    assert done.status_code == 303
    assert "secure" in done.headers["set-cookie"].lower()


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    web: FastAPI, client: httpx.AsyncClient
) -> None:
    await add_staff(web, "ana@bistro.example")
    answers = []
    for email, password in (
        ("ana@bistro.example", "wrong password!"),
        ("nobody@x.example", PASSWORD),
    ):
        form = await client.get("/dashboard/sign-in")
        r = await client.post(
            "/dashboard/sign-in",
            data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
        )
        answers.append((r.status_code, "Wrong email or password" in r.text))
        assert "ob_session" not in r.headers.get("set-cookie", "")
    assert answers == [(401, True), (401, True)]


async def test_sign_in_needs_its_csrf_token(web: FastAPI, client: httpx.AsyncClient) -> None:
    await add_staff(web, "ana@bistro.example")
    await client.get("/dashboard/sign-in")
    forged = await client.post(
        "/dashboard/sign-in",
        data={"email": "ana@bistro.example", "password": PASSWORD, "csrf_token": "x" * 48},
    )
    assert forged.status_code == 403 and "ob_session" not in forged.headers.get("set-cookie", "")
    missing = await client.post(
        "/dashboard/sign-in", data={"email": "ana@bistro.example", "password": PASSWORD}
    )
    assert missing.status_code == 403


async def test_pages_need_a_session(app: App, client: httpx.AsyncClient) -> None:
    loc = await location_id(app)
    for path in ("/dashboard", f"/dashboard/locations/{loc}", "/dashboard/orders/1"):
        r = await client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/dashboard/sign-in")
    r = await client.get("/dashboard/orders/1")
    assert r.headers["location"] == "/dashboard/sign-in?next=/dashboard/orders/1"
    polled = await client.get(f"/dashboard/locations/{loc}/columns", headers={"HX-Request": "true"})
    assert polled.status_code == 200 and polled.headers["hx-redirect"].startswith(
        "/dashboard/sign-in"
    )
    posted = await client.post("/dashboard/orders/1/resend", data={"csrf_token": "x"})
    assert posted.status_code == 303


async def test_next_is_followed_only_inside_the_dashboard(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    await add_staff(web, "ana@bistro.example")
    for target, expected in (
        ("/dashboard/search?q=1", "/dashboard/search?q=1"),
        ("https://evil.example/", "/dashboard"),
        ("//evil.example", "/dashboard"),
    ):
        client.cookies.clear()
        form = await client.get("/dashboard/sign-in")
        r = await client.post(
            "/dashboard/sign-in",
            data={
                "email": "ana@bistro.example",
                "password": PASSWORD,
                "csrf_token": csrf_of(form.text),
                "next": target,
            },
        )
        assert r.headers["location"] == expected


async def test_sessions_expire_when_idle_and_after_their_lifetime(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    await add_staff(web, "ana@bistro.example")
    await sign_in(client, "ana@bistro.example")
    staff = web.state.people.staff
    app.clock.advance(staff.idle_timeout.total_seconds() - 60)
    assert (await client.get("/dashboard", follow_redirects=True)).url.path != "/dashboard/sign-in"
    app.clock.advance(staff.idle_timeout.total_seconds() + 1)  # idle too long
    r = await client.get("/dashboard")
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/sign-in")

    await sign_in(client, "ana@bistro.example")
    for _ in range(int(staff.session_ttl / timedelta(hours=1))):  # busy, never idle...
        app.clock.advance(3600)
        if (
            (await client.get("/dashboard"))
            .headers.get("location", "")
            .startswith("/dashboard/sign")
        ):
            break
    r = await client.get("/dashboard")  # ...but the lifetime is over
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/sign-in")
    assert await rows(app.db, tables.staff_sessions) == [] or all(
        s.expires_at > app.clock() for s in await rows(app.db, tables.staff_sessions)
    )


async def test_sign_out_ends_the_session(app: App, web: FastAPI, client: httpx.AsyncClient) -> None:
    await add_staff(web, "ana@bistro.example")
    token = await sign_in(client, "ana@bistro.example")
    cookie = client.cookies.get("ob_session")
    assert (await client.post("/dashboard/sign-out")).status_code == 403  # no CSRF token
    out = await client.post("/dashboard/sign-out", data={"csrf_token": token})
    assert out.status_code == 303
    client.cookies.set("ob_session", cookie or "", domain="orderbell.test", path="/dashboard")
    again = await client.get("/dashboard")
    assert again.status_code == 303  # the old cookie is worth nothing now
    actions = [r.action for r in await rows(app.db, tables.audit_log)]
    assert actions == ["sign_in", "sign_out"]


async def test_disabled_users_lose_their_sessions(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    await add_staff(web, "ana@bistro.example")
    await sign_in(client, "ana@bistro.example")
    async with app.db.transaction() as conn:
        await conn.execute(tables.staff_users.update().values(disabled_at=app.clock()))
    assert (await client.get("/dashboard")).status_code == 303


# -- board ----------------------------------------------------------------------------------


async def test_board_shows_orders_by_status_and_highlights_late_ones(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    now = app.clock()
    await app.order(order_id="A-1", number="1001", status="confirmed", guest=GUEST)
    await app.order(
        order_id="A-2",
        number="1002",
        status="in_kitchen",
        promised_at=(now - timedelta(minutes=20)).isoformat(),
    )
    await app.order(order_id="A-3", number="1003", status="ready")
    await app.order(
        order_id="A-4",
        number="1004",
        status="in_kitchen",
        promised_at=(now - timedelta(minutes=2)).isoformat(),  # within the grace period
    )
    await add_staff(web, "ana@bistro.example")
    await sign_in(client, "ana@bistro.example")
    loc = await location_id(app)
    page = await client.get(f"/dashboard/locations/{loc}")
    assert page.status_code == 200
    assert f'hx-get="/dashboard/locations/{loc}/columns"' in page.text
    assert 'hx-trigger="every 3s"' in page.text
    fragment = (await client.get(f"/dashboard/locations/{loc}/columns")).text
    assert "<html" not in fragment

    def column(key: str) -> str:
        start = fragment.index(f'data-column="{key}"')
        end = fragment.find("data-column=", start + 20)
        return fragment[start : end if end > 0 else None]

    assert "#1001" in column("new") and "Maria" in column("new")
    assert "#1002" in column("in_kitchen") and "#1004" in column("in_kitchen")
    assert "#1003" in column("ready")
    late = column("in_kitchen")
    assert "20 min late" in late and "1 late" in fragment
    card_1004 = late[late.index('data-order="1004"') - 200 : late.index('data-order="1004"')]
    assert "late" not in card_1004.split("class=")[-1].split('"')[1]


async def test_home_lists_locations_when_there_are_several(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    from tests.web.dashboard_kit import add_location

    await add_location(app, app.tenant_id, "uptown", "Bistro Uptown")
    await add_staff(web, "ana@bistro.example")
    await sign_in(client, "ana@bistro.example")
    home = await client.get("/dashboard")
    assert home.status_code == 200
    assert "Bistro Downtown" in home.text and "Bistro Uptown" in home.text


async def test_a_member_sees_only_their_locations(app: App, web: FastAPI) -> None:
    from tests.web.dashboard_kit import add_location

    uptown = await add_location(app, app.tenant_id, "uptown", "Bistro Uptown")
    downtown = await location_id(app)
    there = await app.order(order_id="U-1", number="7001", location="uptown")
    here = await app.order(order_id="D-1", number="7002")
    async with as_member(web, "dt@bistro.example", role="staff", locations=("downtown",)) as (c, _):
        assert (await c.get("/dashboard")).headers["location"] == f"/dashboard/locations/{downtown}"
        assert (await c.get(f"/dashboard/locations/{uptown}")).status_code == 404
        assert (await c.get(f"/dashboard/orders/{there.order_id}")).status_code == 404
        assert (await c.get(f"/dashboard/orders/{here.order_id}")).status_code == 200
        found = await c.get("/dashboard/search", params={"q": "7001"})
        assert "0 orders found" in found.text


# -- order page -----------------------------------------------------------------------------


async def test_order_page_shows_the_full_timeline(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await app.order(number="1042", status="confirmed", guest=GUEST)
    await app.status(created.order_id, "ready", note="on the shelf")
    await app.status(created.order_id, "confirmed")  # stale
    await app.container.dispatcher(rand=lambda: 0.5, worker_id="w").drain()
    await add_staff(web, "ana@bistro.example")
    await sign_in(client, "ana@bistro.example")
    page = await client.get(f"/dashboard/orders/{created.order_id}")
    assert page.status_code == 200
    text = page.text
    assert "Order #1042" in text
    assert "stale" in text and "not moved back" in text  # the event and its reason
    assert 'data-trigger="ready"' in text and 'data-state="sent"' in text
    assert "Why:" in text and PHONE in text
    assert "attempt 1: sent" in text and "twilio_sms" in text
    assert "/t/" in text  # tracking link
    assert "Resend" in text and "Mark delayed" in text and "Cancel pending" in text
    # the htmx poll answers 204 while nothing changed, the fragment once something did
    stamp = text.split("/timeline?v=")[1].split('"')[0]
    same = await client.get(f"/dashboard/orders/{created.order_id}/timeline?v={stamp}")
    assert same.status_code == 204
    await app.status(created.order_id, "completed")
    changed = await client.get(f"/dashboard/orders/{created.order_id}/timeline?v={stamp}")
    assert changed.status_code == 200 and "completed" in changed.text


async def test_html_in_guest_data_is_shown_as_text(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    evil = "<script>alert('x')</script>"
    created = await app.order(
        number="666",
        status="confirmed",
        guest={"name": evil, "phone": "(212) 555-0188", "email": "e@example.com"},
        note="<img src=x onerror=alert(1)>",
    )
    await add_staff(web, "ana@bistro.example")
    await sign_in(client, "ana@bistro.example")
    loc = await location_id(app)
    async with app.db.read() as conn:
        cid = (
            await conn.execute(
                sa.select(tables.orders.c.customer_id).where(tables.orders.c.id == created.order_id)
            )
        ).scalar_one()
    for path in (
        f"/dashboard/locations/{loc}",
        f"/dashboard/locations/{loc}/columns",
        f"/dashboard/orders/{created.order_id}",
        f"/dashboard/customers/{cid}",
        "/dashboard/search?q=666",
        "/dashboard/search?q=" + evil,
    ):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert "<script>alert" not in r.text and "<img src=x" not in r.text, path
    board = await client.get(f"/dashboard/locations/{loc}")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in board.text


# -- search ---------------------------------------------------------------------------------


async def test_search_by_number_phone_and_email(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    await app.order(order_id="A-1", number="1001", guest=GUEST)
    await app.order(
        order_id="A-2", number="1002", guest={"name": "Tom", "email": "Tom@Example.com"}
    )
    await add_staff(web, "ana@bistro.example")
    await sign_in(client, "ana@bistro.example")

    async def numbers(q: str) -> list[str]:
        r = await client.get("/dashboard/search", params={"q": q})
        assert r.status_code == 200
        return sorted(set(__import__("re").findall(r">#(\d+)</a>", r.text)))

    assert await numbers("1001") == ["1001"]
    assert await numbers("#1002") == ["1002"]
    assert await numbers("212-555-0123") == ["1001"]
    assert await numbers(PHONE) == ["1001"]
    assert await numbers("tom@example.com") == ["1002"]
    assert await numbers("nobody@example.com") == []


# -- guests and consent ---------------------------------------------------------------------


async def test_guest_page_shows_consent_history_and_staff_can_opt_out(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await app.order(
        number="1001",
        status="confirmed",
        guest={
            **GUEST,
            "email": "maria@example.com",
            "consent": [{"channel": "sms", "purpose": "marketing", "granted": True}],
        },
    )
    async with app.db.read() as conn:
        cid = (
            await conn.execute(
                sa.select(tables.orders.c.customer_id).where(tables.orders.c.id == created.order_id)
            )
        ).scalar_one()
    await add_staff(web, "ana@bistro.example", name="Ana Ruiz")
    token = await sign_in(client, "ana@bistro.example")
    page = await client.get(f"/dashboard/customers/{cid}")
    assert page.status_code == 200
    assert "Consent history" in page.text and "checkout" in page.text
    assert PHONE in page.text and "maria@example.com" in page.text

    refused = await client.post(f"/dashboard/customers/{cid}/opt-out", data={"family": "sms"})
    assert refused.status_code == 403
    assert [r for r in await rows(app.db, tables.consent_events) if r.source == "staff"] == []

    done = await client.post(
        f"/dashboard/customers/{cid}/opt-out", data={"family": "sms", "csrf_token": token}
    )
    assert done.status_code == 303
    written = [r for r in await rows(app.db, tables.consent_events) if r.source == "staff"]
    assert {(r.family, r.purpose, r.granted) for r in written} == {
        ("sms", "transactional", False),
        ("sms", "followup", False),
        ("sms", "marketing", False),
    }
    assert {r.actor for r in written} == {"Ana Ruiz"}
    audit = [r for r in await rows(app.db, tables.audit_log) if r.action == "opt_out"]
    assert audit and "Ana Ruiz" in audit[0].actor and audit[0].target == f"customer:{cid}"
    after = await client.get(done.headers["location"])
    assert "Opt-out recorded" in after.text and "revoked" in after.text

    # nothing more goes to this guest by SMS
    moved = await app.status(created.order_id, "ready")
    assert moved.planned == () and len(moved.skipped) == 1
    everything = await client.post(
        f"/dashboard/customers/{cid}/opt-out", data={"family": "all", "csrf_token": token}
    )
    assert everything.status_code == 303
    families = {r.family for r in await rows(app.db, tables.consent_events) if r.source == "staff"}
    assert families == {"sms", "voice", "email"}  # a phone number reaches SMS and voice


async def test_roles_limit_what_a_member_may_do(app: App, web: FastAPI) -> None:
    created = await app.order(number="1001", status="confirmed", guest=GUEST)
    async with app.db.read() as conn:
        cid = (
            await conn.execute(
                sa.select(tables.orders.c.customer_id).where(tables.orders.c.id == created.order_id)
            )
        ).scalar_one()
    loc = await location_id(app)
    async with as_member(web, "line@bistro.example", role="staff") as (c, token):
        assert (await c.get(f"/dashboard/orders/{created.order_id}")).status_code == 200
        page = await c.get(f"/dashboard/orders/{created.order_id}")
        assert "Cancel pending" not in page.text
        r = await c.post(
            f"/dashboard/customers/{cid}/opt-out", data={"family": "sms", "csrf_token": token}
        )
        assert r.status_code == 403
        assert (await c.get(f"/dashboard/locations/{loc}/figures")).status_code == 403
        r = await c.post(
            f"/dashboard/orders/{created.order_id}/cancel-messages", data={"csrf_token": token}
        )
        assert r.status_code == 403


async def test_staff_add_refuses_bad_input(app: App, web: FastAPI) -> None:
    import pytest

    from orderbell.errors import NotFoundError, PayloadError

    staff = web.state.people.staff
    with pytest.raises(PayloadError):
        await staff.add_user("bistro", "not-an-email", PASSWORD)
    with pytest.raises(PayloadError):
        await staff.add_user("bistro", "a@b.example", "short")
    with pytest.raises(PayloadError):
        await staff.add_user("bistro", "a@b.example", PASSWORD, role="admin")
    with pytest.raises(NotFoundError):
        await staff.add_user("nope", "a@b.example", PASSWORD)
    with pytest.raises(NotFoundError):
        await staff.add_user("bistro", "a@b.example", PASSWORD, locations=["moon"])
    await staff.add_user("bistro", "a@b.example", PASSWORD)
    with pytest.raises(PayloadError):
        await staff.add_user("cafe", "A@b.example", PASSWORD)
    (user,) = await rows(app.db, tables.staff_users)
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


# -- templates and figures ------------------------------------------------------------------


async def test_template_preview_counts_sms_segments_and_names_the_whatsapp_template(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    async with app.db.transaction() as conn:
        await conn.execute(
            tables.channels.insert().values(
                tenant_id=app.tenant_id,
                name="wa",
                provider="whatsapp",
                family="whatsapp",
                priority=50,
                settings={"templates": {"ready": "order_ready_v2"}, "template_language": "en_US"},
                enabled=True,
                created_at=app.clock(),
            )
        )
    app.container.tenants.invalidate()
    await add_staff(web, "ana@bistro.example")
    await sign_in(client, "ana@bistro.example")
    page = await client.get("/dashboard/templates", params={"name": "ready", "family": "sms"})
    assert page.status_code == 200
    assert "Maria" in page.text and "1042" in page.text
    segments = page.text.split('id="segments">')[1].split("<")[0]
    assert int(segments) >= 1 and "GSM-7" in page.text
    assert "order_ready_v2" in page.text and "en_US" in page.text
    spanish = await client.get(
        "/dashboard/templates", params={"name": "ready", "family": "email", "locale": "es"}
    )
    assert spanish.status_code == 200 and "Subject:" in spanish.text
    assert "/dashboard/templates/html?" in spanish.text
    src = spanish.text.split('src="/dashboard/templates/html?')[1].split('"')[0]
    email = await client.get("/dashboard/templates/html?" + src.replace("&amp;", "&"))
    assert email.status_code == 200 and "<html" in email.text.lower()
    assert "sandbox" in email.headers["content-security-policy"]


async def test_figures_per_location_with_a_chart(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    first = await app.order(order_id="A-1", number="1001", status="confirmed", guest=GUEST)
    await app.order(
        order_id="A-2",
        number="1002",
        status="confirmed",
        guest={"name": "Tom", "phone": "+12125550177"},
    )
    app.clock.advance(2)
    await app.container.dispatcher(rand=lambda: 0.5, worker_id="w").drain()
    async with app.db.read() as conn:
        cid = (
            await conn.execute(
                sa.select(tables.orders.c.customer_id).where(tables.orders.c.id == first.order_id)
            )
        ).scalar_one()
    await add_staff(web, "ana@bistro.example")
    token = await sign_in(client, "ana@bistro.example")
    await client.post(
        f"/dashboard/customers/{cid}/opt-out", data={"family": "all", "csrf_token": token}
    )
    loc = await location_id(app)
    page = await client.get(f"/dashboard/locations/{loc}/figures", params={"days": 7})
    assert page.status_code == 200
    assert page.text.split('id="fig-sent">')[1].startswith("2<")
    assert page.text.split('id="fig-failed">')[1].startswith("0<")
    assert page.text.split('id="fig-optout">')[1].startswith("50.0%")
    assert "<svg" in page.text and "<rect" in page.text and "2 sent" in page.text
    assert "<script" not in page.text.split("<svg")[1].split("</svg>")[0]


async def test_repeated_failures_lock_the_email_out_for_a_while(app: App) -> None:
    import pytest

    from orderbell.engine.staff import StaffService
    from orderbell.errors import AuthError

    staff = StaffService(app.db, signing_key=b"k" * 32, clock=app.clock, max_failures=3)
    await staff.add_user("bistro", "ana@bistro.example", PASSWORD)
    for _ in range(3):
        with pytest.raises(AuthError, match="wrong email or password"):
            await staff.sign_in("ana@bistro.example", "not the password")
    with pytest.raises(AuthError, match="too many failed attempts"):
        await staff.sign_in("ana@bistro.example", PASSWORD)
    assert staff.verify("x", "value", staff.sign("x", "value"))
    assert not staff.verify("x", "value", staff.sign("y", "value"))
    assert not staff.verify("x", "", staff.sign("x", ""))
