"""The pooled HTTP client, for provider adapters (it lives in ``orderbell.http`` so order
sources that call their platform's API share the same client)."""

from orderbell.http import (
    HttpResponse,
    HttpClient,
    basic_auth_header,
    parse_retry_after,
    retry_after_from_reset,
    is_transient_status,
    error_for_status,
    redact_contacts,
)

__all__ = [
    "HttpResponse",
    "HttpClient",
    "basic_auth_header",
    "parse_retry_after",
    "retry_after_from_reset",
    "is_transient_status",
    "error_for_status",
    "redact_contacts",
]
