"""An order's timeline as text for the terminal (``orderbell orders show``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _t(value: Any) -> str:
    return str(value or "")[:19].replace("T", " ")


def render_timeline(console: Console, tl: dict[str, Any]) -> None:
    o = tl["order"]
    guest = (tl.get("guest") or {}).get("name") or "(no name)"
    console.print(
        f"[bold]Order #{o['number']}[/] (id {o['id']}, external {o['external_id']}) - "
        f"[bold]{o['status']}[/], {o['fulfillment']}, at {tl.get('location') or '-'}; guest {guest}",
        highlight=False,
    )
    if o.get("tracking_link"):
        console.print(f"tracking: {o['tracking_link']}", highlight=False)
    events = Table("received (UTC)", "event", "status", "outcome", "note", title="Events")
    for e in tl["events"]:
        events.add_row(
            _t(e["received_at"]),
            f"{e['kind']} {e['event_id']}",
            e["status"] or "-",
            e["outcome"],
            e["note"] or "",
        )
    console.print(events)
    msgs = Table("#", "trigger", "to", "channel", "state", "why", title="Messages")
    for m in tl["messages"]:
        msgs.add_row(
            str(m["id"]),
            m["trigger"],
            m["audience"],
            m["channel"] or m["family"] or "-",
            m["state"],
            m["why"],
        )
    console.print(msgs)
    for m in tl["messages"]:
        if not m.get("history") and not m.get("attempts_detail"):
            continue
        console.print(
            f"[bold]message {m['id']}[/] ({m['trigger']} -> {m['audience']}):", highlight=False
        )
        for h in m.get("history", []):
            console.print(
                f"  {_t(h['at'])}  {h['event']:<10} {h['detail']}", highlight=False, markup=False
            )
        for a in m.get("attempts_detail", []):
            err = f" {a['error_code'] or ''} {a['error'] or ''}".rstrip()
            console.print(
                f"  attempt {a['number']} via {a['provider']}: {a['outcome']} "
                f"in {a['latency_ms']} ms{err}",
                highlight=False,
                markup=False,
            )
        if m.get("body"):
            console.print(
                "  text: " + m["body"].replace("\n", " ")[:300], highlight=False, markup=False
            )
