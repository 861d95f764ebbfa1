"""What a staff chat card shows, whatever the chat: a title, the text, facts and a link.

Slack (Block Kit), Teams (Adaptive Card), Google Chat (cardsV2) and Discord (embeds)
each draw these four things in their own format; this module only decides what they
are, from the rendered message and its metadata:

* title: the message subject, else "Order <order_number>", else "Order update";
* facts: the order number, status, location and ETA when the metadata has them
  (``order_number``, ``order_status``, ``location``, ``eta``), in that order;
* link: ``dashboard_url`` (staff view of the order) or else ``tracking_url``.
"""

from __future__ import annotations

from dataclasses import dataclass

from orderbell.channels._support import STATUS_KEY
from orderbell.channels.base import OutboundMessage

FACT_KEYS = (
    ("order_number", "Order"),
    (STATUS_KEY, "Status"),
    ("location", "Location"),
    ("eta", "ETA"),
)
LINK_KEYS = ("dashboard_url", "tracking_url")


@dataclass(frozen=True, slots=True)
class Card:
    title: str
    text: str
    facts: tuple[tuple[str, str], ...]
    link: str | None


def card_for(message: OutboundMessage) -> Card:
    meta = message.metadata
    title = (message.subject or "").strip()
    if not title:
        number = meta.get("order_number", "").strip()
        title = f"Order {number}" if number else "Order update"
    facts = tuple(
        (label, meta[key].strip().replace("_", " ") if key == STATUS_KEY else meta[key].strip())
        for key, label in FACT_KEYS
        if meta.get(key, "").strip()
    )
    link = next(
        (meta[k].strip() for k in LINK_KEYS if meta.get(k, "").startswith(("https://", "http://"))),
        None,
    )
    return Card(title=title, text=message.text.strip(), facts=facts, link=link)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


__all__ = ["Card", "card_for", "truncate"]
