"""Meta Graph API errors, shared by the WhatsApp Cloud API and Messenger Send API adapters.

A Graph error is ``{"error": {"message", "type", "code", "error_subcode",
"error_data": {"details"}, "error_user_msg", "is_transient", "fbtrace_id"}}``. Meta asks
callers to branch on ``code`` rather than on the HTTP status, and several throttling
codes arrive as HTTP 400, so the code (or ``is_transient``) can make an error transient
whatever the status. ``SendError.code`` is the Graph code; with ``with_subcode`` it is
``code/subcode`` when a subcode is given (Messenger's 24-hour-window refusal is
``10/2018278``; WhatsApp deprecated subcodes in v16.0, so its codes stand alone).
"""

from __future__ import annotations

from collections.abc import Collection

from orderbell.channels.http import HttpResponse, error_for_status
from orderbell.errors import SendError, TransientSendError


def graph_error(
    resp: HttpResponse,
    provider: str,
    transient_codes: Collection[int],
    *,
    with_subcode: bool = False,
) -> SendError:
    """The ``SendError`` for a Graph API error answer."""
    payload = resp.json_or_none()
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        detail = resp.text()[:200] if resp.body else ""
        return error_for_status(resp, provider, code=None, detail=detail)
    raw_code = error.get("code")
    code_number = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    subcode = error.get("error_subcode")
    code: str | None = None
    if code_number is not None:
        code = str(code_number)
        if with_subcode and isinstance(subcode, int) and not isinstance(subcode, bool) and subcode:
            code = f"{code_number}/{subcode}"
    parts = [str(error.get("message") or "").strip()]
    data = error.get("error_data")
    if isinstance(data, dict) and data.get("details"):
        parts.append(str(data["details"]).strip())
    if error.get("error_user_msg"):
        parts.append(str(error["error_user_msg"]).strip())
    detail = " - ".join(p for p in parts if p)
    err = error_for_status(resp, provider, code=code, detail=detail)
    if not isinstance(err, TransientSendError) and (
        code_number in transient_codes or error.get("is_transient") is True
    ):
        return TransientSendError(str(err), code=code, http_status=resp.status)
    return err


def graph_code(err: SendError) -> int | None:
    """The Graph error code of ``err`` (without its subcode), if it has one."""
    if not err.code:
        return None
    head = err.code.split("/", 1)[0]
    return int(head) if head.isdigit() else None


__all__ = ["graph_code", "graph_error"]
