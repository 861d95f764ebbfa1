"""The pooled HTTP client, for provider adapters (it lives in ``orderbell.http`` so order
sources that call their platform's API share the same client)."""

from orderbell.http import (
    HttpClient,
    HttpResponse,
    basic_auth_header,
    error_for_status,
    is_transient_status,
    parse_retry_after,
    redact_contacts,
    retry_after_from_reset,
)

__all__ = [
    "HttpClient",
    "HttpResponse",
    "basic_auth_header",
    "error_for_status",
    "is_transient_status",
    "parse_retry_after",
    "redact_contacts",
    "retry_after_from_reset",
]
