"""The dashboard's order actions (resend, set status, mark delayed, cancel pending
messages): checked against the member's role and scope here, then carried out by the
manual override services (``engine/overrides.py``), which audit each one with the
member's name in the same transaction as its effect."""

from __future__ import annotations

from datetime import datetime

from orderbell.domain.model import OrderStatus
from orderbell.engine.overrides import OverrideResult, OverrideService
from orderbell.engine.staff import Permission, StaffMember, StaffService
from orderbell.errors import PayloadError


class Actions:
    def __init__(self, overrides: OverrideService, staff: StaffService) -> None:
        self._overrides = overrides
        self._staff = staff

    async def _check(self, member: StaffMember, order_id: int, permission: Permission) -> None:
        member.require(permission)
        await self._staff.order_in_scope(member, order_id)  # NotFoundError when foreign

    async def resend(
        self, member: StaffMember, order_id: int, note: str | None = None
    ) -> OverrideResult:
        await self._check(member, order_id, Permission.ACT)
        return await self._overrides.resend(
            member.tenant_id, order_id, actor=member.actor, note=note
        )

    async def set_status(
        self,
        member: StaffMember,
        order_id: int,
        status: str,
        note: str | None = None,
        *,
        force: bool = False,
    ) -> OverrideResult:
        await self._check(member, order_id, Permission.ACT)
        try:
            new = OrderStatus(status)
        except ValueError:
            raise PayloadError(f"unknown status {status!r}") from None
        return await self._overrides.set_status(
            member.tenant_id, order_id, new, actor=member.actor, force=force, note=note
        )

    async def mark_delayed(
        self, member: StaffMember, order_id: int, eta: datetime, note: str | None = None
    ) -> OverrideResult:
        await self._check(member, order_id, Permission.ACT)
        return await self._overrides.mark_delayed(
            member.tenant_id, order_id, eta, actor=member.actor, note=note
        )

    async def cancel_pending(
        self, member: StaffMember, order_id: int, note: str | None = None
    ) -> OverrideResult:
        await self._check(member, order_id, Permission.CANCEL_MESSAGES)
        return await self._overrides.cancel_messages(
            member.tenant_id, order_id, actor=member.actor, note=note
        )
