"""Prometheus metrics, in a registry of their own made by the entrypoint (nothing global)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from orderbell.channels.base import SendResult
from orderbell.errors import SendError, TransientSendError


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "orderbell_order_events_total",
            "Order events received, by source and outcome",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "orderbell_requests_rejected_total",
            "Requests refused before anything was stored, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.messages = Counter(
            "orderbell_messages_finished_total",
            "Messages leaving the queue, by resulting state and channel",
            ["state", "channel"],
            registry=self.registry,
        )
        self.provider_calls = Counter(
            "orderbell_provider_calls_total",
            "Provider calls, by provider and result (sent, transient, permanent)",
            ["provider", "result"],
            registry=self.registry,
        )
        self.provider_latency = Histogram(
            "orderbell_provider_latency_seconds",
            "Time a provider took to answer",
            ["provider"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def event(self, source: str, outcome: str) -> None:
        self.events.labels(source, outcome).inc()

    def reject(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def message_finished(self, state: str, channel: str) -> None:
        self.messages.labels(state, channel).inc()

    def provider_call(self, provider: str, seconds: float, result: SendResult | SendError) -> None:
        if isinstance(result, SendResult):
            kind = "sent"
        elif isinstance(result, TransientSendError):
            kind = "transient"
        else:
            kind = "permanent"
        self.provider_calls.labels(provider, kind).inc()
        self.provider_latency.labels(provider).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
