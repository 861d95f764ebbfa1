"""The ``orderbell`` command line (Typer). Thin: parse, call the engine, format."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from orderbell import __version__
from orderbell.config import Settings
from orderbell.errors import OrderBellError

T = TypeVar("T")

app = typer.Typer(
    name="orderbell",
    help="Order Bell: tells restaurant guests and staff where their order is.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orders_app = typer.Typer(help="Orders and their history.", no_args_is_help=True)
keys_app = typer.Typer(help="Tenant API keys.", no_args_is_help=True)
staff_app = typer.Typer(help="People who sign in to the dashboard.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(orders_app, name="orders")
app.add_typer(keys_app, name="keys")
app.add_typer(staff_app, name="staff")
privacy_app = typer.Typer(
    help="Guests' data rights: export, erase, retention purge.", no_args_is_help=True
)
app.add_typer(privacy_app, name="privacy")

# Wrapped lines break grep and copy-paste: when not on a terminal, print wide.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return Settings.from_env()
    except OrderBellError as exc:
        fail(str(exc))
        raise  # unreachable


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; our errors become one line on stderr, never a traceback."""
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except OrderBellError as exc:
        fail(str(exc))
        raise
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _container(s: Settings) -> Any:
    """The wired parts, for commands that read or write the database (it must be migrated)."""
    from orderbell.bootstrap import build

    container = build(s)
    if await container.db.current_revision() is None:
        await container.aclose()
        raise OrderBellError("the database has no schema yet; run `orderbell db upgrade` first")
    return container


def setup_logging(s: Settings) -> None:
    from orderbell.logs import configure

    configure(level=s.log_level, json_output=s.log_json)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"orderbell {__version__}")
        raise typer.Exit()


# --- serving --------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """API + worker in one process (SQLite by default; no credentials needed).

    On first run it migrates the database, creates a demo tenant with the local outbox
    channel, and prints its API key."""
    s = settings()
    s = s.listening(host, port)
    setup_logging(s)
    run(lambda: _serve(s, run_worker=True, first_run=True))


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """The HTTP API alone (stateless; run several behind a load balancer)."""
    s = settings()
    s = s.listening(host, port)
    setup_logging(s)
    run(lambda: _serve(s, run_worker=False, first_run=False))


async def _serve(s: Settings, *, run_worker: bool, first_run: bool) -> None:
    import uvicorn

    from orderbell.bootstrap import build
    from orderbell.engine.apply import ensure_demo
    from orderbell.web.app import create_app

    container = build(s)
    if first_run:
        await container.db.upgrade()
        demo = await ensure_demo(container)
        if demo is not None:
            out.print(
                f"[bold green]First run:[/] created tenant [bold]demo[/] with the local outbox "
                f"channel.\nAPI key (saved to {demo.key_file}):\n  [bold]{demo.api_key}[/]"
            )
    elif await container.db.current_revision() is None:
        raise OrderBellError("the database is not migrated; run `orderbell db upgrade` first")
    app_ = create_app(container, run_worker=run_worker)
    config = uvicorn.Config(
        app_,
        host=s.host,
        port=s.port,
        log_level=s.log_level,
        access_log=False,
        lifespan="on",
        loop="asyncio",
        # open live-tracking streams (server-sent events) must not hold up a restart
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    out.print(
        f"Order Bell {__version__} listening on http://{s.host}:{s.port} "
        f"({'API + worker' if run_worker else 'API'}, {container.db.dialect}); "
        f"outbox: {s.outbox_path}"
    )
    await server.serve()


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Messages in flight at most.")] = None,
) -> None:
    """The dispatch worker alone (run several; they never send one message twice)."""
    s = settings()
    if concurrency:
        s = s.with_(concurrency=concurrency)
    setup_logging(s)
    run(lambda: _worker(s))


async def _worker(s: Settings) -> None:
    from orderbell.bootstrap import build

    container = build(s)
    if await container.db.current_revision() is None:
        raise OrderBellError("the database is not migrated; run `orderbell db upgrade` first")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    err.print(f"worker started ({container.db.dialect}); Ctrl-C stops it")
    try:
        await container.run_background(stop)
    finally:
        await container.aclose()


# --- database and configuration -------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    s = settings()

    async def go() -> str | None:
        from orderbell.store.database import Database

        s.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(s.db_url)
        try:
            await db.upgrade()
            return await db.current_revision()
        finally:
            await db.dispose()

    rev = run(go)
    out.print(f"database at revision {rev}")


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the sample.")] = Path(
        "orderbell.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented sample configuration (one tenant, one location, outbox, default rules)."""
    from orderbell.engine.configfile import sample_config

    if path.exists() and not force:
        fail(f"{path} exists; pass --force to overwrite it")
    path.write_text(sample_config())
    out.print(f"wrote {path}; edit it, then run `orderbell apply {path}`")


@app.command()
def apply(
    path: Annotated[Path, typer.Argument(help="The YAML configuration file.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only.")] = False,
) -> None:
    """Validate a configuration file and load it (idempotent: applying twice changes nothing)."""
    s = settings()
    from orderbell.engine.configfile import load_config

    if not path.exists():
        fail(f"{path}: no such file")
    try:
        cfg = load_config(path)
    except OrderBellError as exc:
        fail(str(exc))
    if dry_run:
        out.print(f"{path} is valid")
        return

    async def go() -> Any:
        from orderbell.bootstrap import build
        from orderbell.engine.apply import apply_config

        container = build(s)
        try:
            await container.db.upgrade()
            return await apply_config(container, cfg)
        finally:
            await container.aclose()

    report = run(go)
    for line in report.lines():
        out.print(line)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")] = "demo",
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")] = "default",
) -> None:
    """Create an API key for a tenant. It is shown once; only its hash is stored."""
    s = settings()

    async def go() -> str:
        container = await _container(s)
        try:
            return await container.orders.create_api_key(tenant, name)
        finally:
            await container.aclose()

    key = run(go)
    out.print(key)


@staff_app.command("add")
def staff_add(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    email: Annotated[str, typer.Option(help="The email they sign in with.")],
    role: Annotated[str, typer.Option(help="owner, manager or staff.")] = "staff",
    name: Annotated[
        str | None, typer.Option(help="Their name, as the audit trail shows it.")
    ] = None,
    location: Annotated[
        list[str] | None,
        typer.Option("--location", help="A location slug they work at (repeat); default all."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERBELL_STAFF_PASSWORD",
            help="The password (at least 10 characters); asked for when not given.",
        ),
    ] = None,
) -> None:
    """Add a dashboard user to a tenant (the password is stored as an Argon2id hash)."""
    s = settings()
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def go() -> int:
        from orderbell.engine.staff import StaffService, signing_key

        container = await _container(s)
        try:
            staff = StaffService(container.db, signing_key=signing_key(s), clock=container.clock)
            return await staff.add_user(
                tenant, email, password, role=role, name=name, locations=location or ()
            )
        finally:
            await container.aclose()

    user_id = run(go)
    where = ", ".join(location) if location else "every location"
    out.print(f"added {email} ({role}, {where}) as staff user {user_id}", highlight=False)


# --- looking at things ----------------------------------------------------------------


@app.command()
def outbox(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many of the latest.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """What the local outbox channel captured: the messages that would have been sent."""
    from orderbell.channels.outbox import read_outbox

    path = settings().outbox_path
    entries = read_outbox(path)
    shown = entries[-limit:] if limit else entries
    _print_outbox(shown, as_json)
    if not entries and not follow:
        err.print(f"(nothing in {path} yet)")
    seen = len(entries)
    while follow:
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:
            raise typer.Exit() from None
        entries = read_outbox(path)
        if len(entries) > seen:
            _print_outbox(entries[seen:], as_json)
            seen = len(entries)


def _print_outbox(entries: list[dict[str, Any]], as_json: bool) -> None:
    for e in entries:
        if as_json:
            print(json.dumps(e, ensure_ascii=False))
            continue
        head = f"[dim]{e.get('at', '')}[/] #{e.get('message_id')} [bold]{e.get('channel', '')}[/] -> {e.get('to') or '(staff)'}"
        out.print(head, highlight=False)
        if e.get("subject"):
            out.print(f"  Subject: {e['subject']}", highlight=False, markup=False)
        out.print(
            "  " + str(e.get("text", "")).replace("\n", "\n  "), highlight=False, markup=False
        )


@orders_app.command("show")
def orders_show(
    order: Annotated[str, typer.Argument(help="Order id, external id or number.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """An order's timeline: events, messages, attempts, and why each message was or was not sent."""
    s = settings()

    async def go() -> dict[str, Any]:
        container = await _container(s)
        try:
            return await container.orders.timeline(order)
        finally:
            await container.aclose()

    tl = run(go)
    if as_json:
        print(json.dumps(tl, indent=2, ensure_ascii=False, default=str))
        return
    from orderbell.timeline_text import render_timeline

    render_timeline(out, tl)


@app.command()
def sources() -> None:
    """The order sources Order Bell understands, with the URL to paste into each platform."""
    from orderbell.sources.registry import SOURCES

    s = settings()
    table = Table("source", "what", "webhook URL", "docs")
    for name, cls in sorted(SOURCES.items()):
        table.add_row(
            name, cls.title, f"{s.public_url}/v1/webhooks/{name}/<integration id>", cls.docs_url
        )
    out.print(table)


@app.command()
def channels(
    configured: Annotated[bool, typer.Option(help="List the configured channels too.")] = True,
) -> None:
    """The providers Order Bell can send through, and the configured channels (secrets masked)."""
    from orderbell.channels.registry import CHANNELS

    table = Table("provider", "family", "what", "secret settings", "docs")
    for name, cls in sorted(CHANNELS.items()):
        table.add_row(
            name, str(cls.family), cls.title, ", ".join(cls.secret_fields) or "-", cls.docs_url
        )
    out.print(table)
    if not configured:
        return
    s = settings()

    async def go() -> list[Any]:
        from orderbell.engine.apply import configured_channels

        container = await _container(s)
        try:
            return await configured_channels(container)
        finally:
            await container.aclose()

    try:
        rows = asyncio.run(go())
    except OrderBellError:
        rows = []  # nothing configured here yet: the provider list above is the answer
    if rows:
        t2 = Table(
            "tenant", "channel", "provider", "family", "priority", "callback URL", "settings"
        )
        for r in rows:
            t2.add_row(
                r["tenant"],
                r["name"],
                r["provider"],
                r["family"],
                str(r["priority"]),
                r["callback_url"] or "-",
                json.dumps(r["settings"], ensure_ascii=False),
            )
        out.print(t2)


@app.command("send-test")
def send_test(
    channel: Annotated[str, typer.Option(help="Configured channel name.")],
    to: Annotated[str, typer.Option(help="Recipient: phone (E.164), email, ...")] = "",
    text: Annotated[str, typer.Option(help="Message text.")] = "Order Bell test message",
    tenant: Annotated[str, typer.Option(help="Tenant slug.")] = "demo",
) -> None:
    """Send one real message through a configured channel, now, and print the provider's answer."""
    s = settings()

    async def go() -> Any:
        from orderbell.engine.apply import send_test_message

        container = await _container(s)
        try:
            return await send_test_message(container, tenant, channel, to, text)
        finally:
            await container.aclose()

    result = run(go)
    out.print(f"sent: provider id {result.provider_message_id or '(none)'}")


# --- data rights ---------------------------------------------------------------------

Phone = Annotated[str | None, typer.Option("--phone", help="The guest's phone number.")]
Email = Annotated[str | None, typer.Option("--email", help="The guest's email address.")]


@privacy_app.command("export")
def privacy_export(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    phone: Phone = None,
    email: Email = None,
) -> None:
    """Print everything held about a guest as JSON (GDPR access request)."""
    s = settings()

    async def go() -> Any:
        container = await _container(s)
        try:
            tenant_id = await container.privacy.tenant_id(tenant)
            return await container.privacy.export(tenant_id, phone=phone, email=email)
        finally:
            await container.aclose()

    data = run(go)
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


@privacy_app.command("erase")
def privacy_erase(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    phone: Phone = None,
    email: Email = None,
    actor: Annotated[
        str | None, typer.Option(help="Who asked for it, as the audit trail shows it.")
    ] = None,
) -> None:
    """Erase a guest's personal data; history and consent proofs stay under a pseudonym."""
    s = settings()

    async def go() -> Any:
        container = await _container(s)
        try:
            tenant_id = await container.privacy.tenant_id(tenant)
            return await container.privacy.erase(
                tenant_id, phone=phone, email=email, actor=actor or "cli"
            )
        finally:
            await container.aclose()

    result = run(go)
    out.print(json.dumps(result.as_dict()), highlight=False)


@privacy_app.command("purge")
def privacy_purge(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age, e.g. 90d, 12h (a plain number is days).")
    ],
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (default: all).")] = None,
) -> None:
    """Retention: drop message bodies, raw order payloads and inbound texts older than N."""
    s = settings()

    async def go() -> Any:
        from orderbell.engine.privacy import parse_duration

        age = parse_duration(older_than)
        container = await _container(s)
        try:
            tenant_id = None if tenant is None else await container.privacy.tenant_id(tenant)
            return await container.privacy.purge(age, tenant_id=tenant_id)
        finally:
            await container.aclose()

    out.print(json.dumps(run(go)), highlight=False)


def main() -> None:
    try:
        app()
    except OrderBellError as exc:  # pragma: no cover - run() handles most
        err.print(f"error: {exc}")
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
