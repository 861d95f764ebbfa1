"""Where a message may go, in order, at the moment it is sent.

The policy chose a channel when the message was planned. When it is sent, the world may
have moved: a provider is failing, the guest's number bounced, consent changed. ``routes``
gives the ordered ways to reach the audience now: the planned channel first, then other
channels of the same family by priority (failover: a provider is down), then channels of
the next families the rule or the guest allows (fallback: this family cannot reach the
guest). Each route knows its family and recipient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orderbell.domain.model import (
    FAMILY_CONTACT,
    AvailableChannel,
    ChannelFamily,
    Guest,
    PlannedMessage,
)


@dataclass(frozen=True, slots=True)
class Route:
    channel: str
    family: ChannelFamily
    recipient: str | None


def routes(
    *,
    channel: str,
    family: ChannelFamily,
    recipient: str | None,
    replanned: PlannedMessage | None,
    channels: Sequence[AvailableChannel],
    guest: Guest | None,
) -> list[Route]:
    """The planned route first, then the alternatives the policy finds possible now.

    ``replanned`` is the policy's answer for the same message at send time (it checked
    contacts and consent afresh); its channel and ``fallbacks`` give the alternatives.
    Channels not configured any more are left out; nothing is listed twice.
    """
    by_name = {c.name: c for c in channels}
    out: list[Route] = [Route(channel, family, recipient)]
    if replanned is None or replanned.skip_reason is not None:
        return out
    names = [n for n in (replanned.channel, *replanned.fallbacks) if n]
    seen = {channel}
    for name in names:
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        fam = by_name[name].family
        out.append(Route(name, fam, _recipient(fam, family, recipient, guest)))
    return out


def _recipient(
    fam: ChannelFamily, planned: ChannelFamily, recipient: str | None, guest: Guest | None
) -> str | None:
    if fam == planned:
        return recipient
    kind = FAMILY_CONTACT.get(fam)
    if kind is None or guest is None:
        return None  # a staff channel: no recipient
    point = guest.contact(kind)
    return point.value if point else None


def same_family_next(routes_: Sequence[Route], index: int) -> bool:
    """Is there another route of the same family after ``index`` (a failover target)?"""
    fam = routes_[index].family
    return any(r.family == fam for r in routes_[index + 1 :])
