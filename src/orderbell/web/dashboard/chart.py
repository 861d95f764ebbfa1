"""A bar chart as plain geometry for an inline SVG (drawn by ``_chart.html``): per day,
messages sent, delivered and failed side by side. No JavaScript, no chart library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orderbell.engine.insights import Day

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 36
SERIES = (("sent", "Sent"), ("delivered", "Delivered"), ("failed", "Failed"))


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    series: str
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    right: int
    baseline: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[Label, ...]
    series: tuple[tuple[str, str], ...]
    empty: bool
    summary: str


def _nice_max(value: int) -> int:
    if value <= 4:
        return 4
    for step in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return step * 4
    magnitude = 10 ** (len(str(value)) - 1)
    return -(-value // magnitude) * magnitude


def bars(days: Sequence[Day]) -> Chart:
    top = _nice_max(max([max(d.sent, d.delivered, d.failed) for d in days] or [0]))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_h
    slot = plot_w / max(1, len(days))
    bar_w = max(2.0, min(18.0, slot * 0.8 / len(SERIES)))
    out: list[Bar] = []
    labels: list[Label] = []
    every = max(1, len(days) // 10)
    for i, day in enumerate(days):
        group_w = bar_w * len(SERIES)
        x0 = LEFT + slot * i + (slot - group_w) / 2
        for j, (key, name) in enumerate(SERIES):
            value = int(getattr(day, key))
            h = plot_h * value / top
            out.append(
                Bar(
                    x=round(x0 + j * bar_w, 1),
                    y=round(baseline - h, 1),
                    w=round(bar_w - 1, 1),
                    h=round(h, 1),
                    series=key,
                    title=f"{day.day.isoformat()}: {value} {name.lower()}",
                )
            )
        if i % every == 0:
            labels.append(Label(round(LEFT + slot * i + slot / 2, 1), day.day.strftime("%b %d")))
    ticks = tuple(Tick(round(baseline - plot_h * k / 4, 1), str(top * k // 4)) for k in range(5))
    total = {key: sum(int(getattr(d, key)) for d in days) for key, _ in SERIES}
    summary = (
        f"Messages per day over {len(days)} days: {total['sent']} sent, "
        f"{total['delivered']} delivered, {total['failed']} failed."
    )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=RIGHT,
        baseline=baseline,
        bars=tuple(out),
        ticks=ticks,
        labels=tuple(labels),
        series=SERIES,
        empty=not any(total.values()),
        summary=summary,
    )
