"""Staff who sign in to the dashboard: users, roles, sign-in, sessions and permissions.

Passwords are hashed with Argon2id (``argon2-cffi``). A session is a random token in an
HttpOnly cookie; the database keeps only its SHA-256, with the synchronizer CSRF token
and two expiries: an absolute one (``session_ttl`` after sign-in) and an idle one
(``idle_timeout`` after the last request). Every order, guest and location a page asks
for is checked against the member's tenant and locations here, so the web layer stays a
thin translator and a foreign id is always "not found".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from orderbell.config import Settings
from orderbell.crypto import load_or_create_key
from orderbell.domain.contacts import normalise_email
from orderbell.engine.ingest import utcnow
from orderbell.errors import AuthError, InputError, NotFoundError, PayloadError
from orderbell.store import audit as audit_store
from orderbell.store import board as board_store
from orderbell.store import setup
from orderbell.store import staff as store
from orderbell.store.database import Database

MIN_PASSWORD = 10


class PermissionDenied(InputError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class Role(StrEnum):
    OWNER = "owner"
    MANAGER = "manager"
    STAFF = "staff"


class Permission(StrEnum):
    VIEW = "view"  # board, orders, guests, search
    ACT = "act"  # resend, set status, mark delayed
    CANCEL_MESSAGES = "cancel_messages"
    OPT_OUT = "opt_out"  # record a guest's opt-out on their behalf
    FIGURES = "figures"
    TEMPLATES = "templates"


#: What each role may do; the one table every check reads.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.MANAGER: frozenset(Permission),
    Role.STAFF: frozenset({Permission.VIEW, Permission.ACT, Permission.TEMPLATES}),
}


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A signed-in person, as every dashboard request sees them."""

    id: int
    tenant_id: int
    tenant_slug: str
    tenant_name: str
    email: str
    name: str
    role: Role
    #: None: every location of the tenant
    location_ids: frozenset[int] | None
    session_id: int = 0
    csrf_token: str = ""

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise PermissionDenied(f"a {self.role.value} may not do this ({permission.value})")

    def sees_location(self, location_id: int | None) -> bool:
        if self.location_ids is None:
            return True
        return location_id is not None and location_id in self.location_ids

    @property
    def actor(self) -> str:
        """How the audit trail names this person."""
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True, slots=True)
class SignedIn:
    member: StaffMember
    token: str  # the cookie value; shown once
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _member(row: Mapping[str, Any], session_id: int = 0, csrf: str = "") -> StaffMember:
    locs = row["location_ids"]
    return StaffMember(
        id=row["id"],
        tenant_id=row["tenant_id"],
        tenant_slug=row["tenant_slug"],
        tenant_name=row["tenant_name"],
        email=row["email"],
        name=row["name"],
        role=Role(row["role"]),
        location_ids=None if locs is None else frozenset(int(i) for i in locs),
        session_id=session_id,
        csrf_token=csrf,
    )


class StaffService:
    def __init__(
        self,
        db: Database,
        *,
        signing_key: bytes,
        clock: Callable[[], datetime] = utcnow,
        session_ttl: timedelta = timedelta(hours=12),
        idle_timeout: timedelta = timedelta(hours=2),
        hasher: PasswordHasher | None = None,
        max_failures: int = 10,
        failure_window: float = 900.0,
    ) -> None:
        self._db = db
        self._key = signing_key
        self._clock = clock
        self.session_ttl = session_ttl
        self.idle_timeout = idle_timeout
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self._max_failures = max_failures
        self._window = failure_window
        self._failures: dict[str, list[float]] = {}

    def now(self) -> datetime:
        return self._clock()

    # -- users -----------------------------------------------------------------------

    async def add_user(
        self,
        tenant_slug: str,
        email: str,
        password: str,
        *,
        role: str = "staff",
        name: str | None = None,
        locations: Iterable[str] = (),
    ) -> int:
        """Create a staff user (``locations``: slugs; none means every location)."""
        address = normalise_email(email)
        if address is None:
            raise PayloadError(f"{email!r} is not an email address")
        address = address.lower()
        try:
            role_ = Role(role)
        except ValueError:
            raise PayloadError(
                f"unknown role {role!r} (use {', '.join(r.value for r in Role)})"
            ) from None
        if len(password) < MIN_PASSWORD:
            raise PayloadError(f"the password must have at least {MIN_PASSWORD} characters")
        password_hash = self._hasher.hash(password)
        async with self._db.transaction() as conn:
            tenant_id = await setup.find_tenant(conn, tenant_slug)
            if tenant_id is None:
                raise NotFoundError(f"no tenant {tenant_slug!r}; run `orderbell apply` first")
            location_ids = None
            wanted = list(dict.fromkeys(locations))
            if wanted:
                snap = await setup.load_tenant(conn, tenant_id)
                slugs = {loc["slug"]: loc["id"] for loc in (snap.locations if snap else ())}
                unknown = [s for s in wanted if s not in slugs]
                if unknown:
                    raise NotFoundError(
                        f"tenant {tenant_slug!r} has no location {', '.join(unknown)}"
                    )
                location_ids = [slugs[s] for s in wanted]
            if await store.find_user_by_email(conn, address) is not None:
                raise PayloadError(f"a staff user {address} exists already")
            return await store.insert_user(
                conn,
                {
                    "tenant_id": tenant_id,
                    "email": address,
                    "name": (name or address.split("@")[0]).strip()[:200],
                    "role": role_.value,
                    "location_ids": location_ids,
                    "password_hash": password_hash,
                    "created_at": self._clock(),
                },
            )

    # -- signing in ------------------------------------------------------------------

    def _throttled(self, email: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(email, []) if now - t < self._window]
        self._failures[email] = recent
        return len(recent) >= self._max_failures

    def _failed(self, email: str) -> None:
        if len(self._failures) > 10_000:  # many addresses tried: forget the stale ones
            now = time.monotonic()
            self._failures = {
                k: v for k, v in self._failures.items() if v and now - v[-1] < self._window
            }
        self._failures.setdefault(email, []).append(time.monotonic())

    async def sign_in(self, email: str, password: str) -> SignedIn:
        """Check the password and open a session; AuthError with one vague message if not."""
        address = (normalise_email(email) or email).strip().lower()
        refused = AuthError("wrong email or password")
        if self._throttled(address):
            raise AuthError("too many failed attempts; wait a few minutes and try again")
        async with self._db.read() as conn:
            row = await store.find_user_by_email(conn, address)
        stored = row["password_hash"] if row is not None else self._dummy_hash
        try:
            self._hasher.verify(stored, password)
            ok = row is not None and row["disabled_at"] is None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            self._failed(address)
            raise refused
        self._failures.pop(address, None)
        now = self._clock()
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + self.session_ttl
        async with self._db.transaction() as conn:
            if self._hasher.check_needs_rehash(stored):
                await store.update_user(
                    conn, row["id"], {"password_hash": self._hasher.hash(password)}
                )
            await store.update_user(conn, row["id"], {"last_sign_in_at": now})
            await store.delete_expired_sessions(conn, now)
            session_id = await store.insert_session(
                conn,
                {
                    "staff_id": row["id"],
                    "token_hash": token_hash(token),
                    "csrf_token": csrf,
                    "created_at": now,
                    "last_seen_at": now,
                    "expires_at": expires,
                },
            )
            await audit_store.record(
                conn,
                tenant_id=row["tenant_id"],
                actor=f"{row['name']} <{row['email']}>",
                action="sign_in",
                target=f"staff:{row['id']}",
                detail=None,
                at=now,
            )
        return SignedIn(_member(row, session_id, csrf), token, expires)

    async def session(self, token: str | None) -> StaffMember | None:
        """The member a session cookie belongs to, or None (unknown, expired, idle, disabled)."""
        if not token or len(token) > 200:
            return None
        async with self._db.read() as conn:
            row = await store.find_session(conn, token_hash(token))
        if row is None:
            return None
        now = self._clock()
        idle = now - row["last_seen_at"] >= self.idle_timeout
        if row["expires_at"] <= now or idle or row["disabled_at"] is not None:
            async with self._db.transaction() as conn:
                await store.delete_session(conn, row["session_id"])
            return None
        if now - row["last_seen_at"] >= timedelta(minutes=1):
            async with self._db.transaction() as conn:  # one write a minute at most
                await store.touch_session(conn, row["session_id"], now)
        return _member(row, row["session_id"], row["csrf_token"])

    async def sign_out(self, member: StaffMember) -> None:
        async with self._db.transaction() as conn:
            await store.delete_session(conn, member.session_id)
            await audit_store.record(
                conn,
                tenant_id=member.tenant_id,
                actor=member.actor,
                action="sign_out",
                target=f"staff:{member.id}",
                detail=None,
                at=self._clock(),
            )

    # -- CSRF ------------------------------------------------------------------------

    @staticmethod
    def check_csrf(member: StaffMember, sent: str | None) -> bool:
        """The synchronizer token check for a state-changing request."""
        return bool(sent) and hmac.compare_digest(member.csrf_token, sent or "")

    def sign(self, purpose: str, value: str) -> str:
        """An HMAC of ``value`` for ``purpose`` (sign-in form and guest page CSRF tokens)."""
        mac = hmac.new(self._key, f"{purpose}\0{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:48]

    def verify(self, purpose: str, value: str, sent: str | None) -> bool:
        return bool(value) and bool(sent) and hmac.compare_digest(self.sign(purpose, value), sent)

    # -- scoping ---------------------------------------------------------------------

    async def order_in_scope(self, member: StaffMember, order_id: int) -> Mapping[str, Any]:
        """The order's scope row if this member may see it; NotFoundError otherwise."""
        async with self._db.read() as conn:
            row = await board_store.order_scope(conn, order_id)
        if row is None or row["tenant_id"] != member.tenant_id:
            raise NotFoundError(f"no order {order_id}")
        if not member.sees_location(row["location_id"]):
            raise NotFoundError(f"no order {order_id}")
        return row

    async def customer_in_scope(self, member: StaffMember, customer_id: int) -> None:
        async with self._db.read() as conn:
            row = await board_store.customer(conn, member.tenant_id, customer_id)
            locs = await board_store.customer_locations(conn, customer_id) if row else set()
        if row is None:
            raise NotFoundError(f"no guest {customer_id}")
        if member.location_ids is not None and not any(member.sees_location(x) for x in locs):
            raise NotFoundError(f"no guest {customer_id}")

    async def audit(
        self, member: StaffMember, action: str, target: str, detail: str | None = None
    ) -> None:
        async with self._db.transaction() as conn:
            await audit_store.record(
                conn,
                tenant_id=member.tenant_id,
                actor=member.actor,
                action=action,
                target=target,
                detail=detail,
                at=self._clock(),
            )


def signing_key(settings: Settings) -> bytes:
    """The HMAC key for sign-in and guest-page CSRF tokens, derived from the secret key
    (so every API process behind a load balancer agrees on it)."""
    secret = load_or_create_key(settings).split(",")[0].strip()
    return hashlib.sha256(b"orderbell csrf v1\0" + secret.encode()).digest()
