"""Who is acting, and what they may do: actors, roles and API tokens.

Four roles, each a set of permissions (``admin`` has them all):

=========  ==========================================================
viewer     read; predict
operator   read; predict; feedback; run (cycles, retrains); rollout
approver   read; predict; approve (and reject)
admin      everything, including tokens, promote/rollback by hand and retention
=========  ==========================================================

A token is ``rtk_<id>.<secret>``. The store keeps the id, the actor, the role and a salted
scrypt hash of the secret (never the secret, which is shown once at creation). A token
can expire and be revoked; either is checked on every use. On the embedded default
(SQLite store) a caller without a token is the local user (``RETRAINER_ACTOR``, else
``local:<login>``) with the admin role: whoever can write the store's file could change
it anyway. A shared store (PostgreSQL) has no local user: every caller needs a token.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrainer.errors import AuthError, ForbiddenError, NotFoundError, SpecError
from retrainer.registry.audit import append_event
from retrainer.registry.db import Database, as_utc
from retrainer.registry.tables import Token

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "Actor",
    "Authenticator",
    "IssuedToken",
    "TokenInfo",
    "TokenStore",
    "hash_secret",
    "local_actor",
    "require",
    "verify_secret",
]

ROLES: Final = ("viewer", "operator", "approver", "admin")
_ALL: Final = frozenset(
    {"read", "predict", "feedback", "run", "rollout", "approve", "promote", "admin"}
)
PERMISSIONS: Final[Mapping[str, frozenset[str]]] = {
    "viewer": frozenset({"read", "predict"}),
    "operator": frozenset({"read", "predict", "feedback", "run", "rollout"}),
    "approver": frozenset({"read", "predict", "approve"}),
    "admin": _ALL,
}

_TOKEN = re.compile(r"^rtk_(?P<id>[0-9a-f]{12})\.(?P<secret>[A-Za-z0-9_-]{20,100})$")
_ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}$")
# scrypt at OWASP's "N=2^15, r=8, p=3" point: 32 MiB per check.
_N, _R, _P = 2**15, 8, 3
_MAXMEM = 128 * _R * _N * 2
USE_AUDIT_EVERY: Final = timedelta(hours=1)


@dataclass(frozen=True)
class Actor:
    """A person or service account acting now, with the role that bounds what it may do."""

    name: str
    role: str
    token_id: str | None = None

    def can(self, permission: str) -> bool:
        """Whether this actor's role grants ``permission``."""
        return permission in PERMISSIONS.get(self.role, frozenset())

    @property
    def via(self) -> str:
        """``token <id>`` or ``local user``: how the actor was identified."""
        return f"token {self.token_id}" if self.token_id else "local user"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "role": self.role, "token_id": self.token_id}


def require(actor: Actor, permission: str, what: str) -> None:
    """Raise ForbiddenError unless ``actor`` may ``permission``; ``what`` names the action."""
    if actor.can(permission):
        return
    roles = [r for r in ROLES if permission in PERMISSIONS[r]]
    raise ForbiddenError(
        f"{actor.name} has the role {actor.role!r}; {what} needs the role "
        f"{' or '.join(repr(r) for r in roles)}"
    )


def local_actor(dialect: str, env: Mapping[str, str]) -> Actor | None:
    """The local user on the embedded default (``dialect`` of the store is SQLite), else
    None. The dialect, not the spec's text: a store URL may be a secret reference."""
    if dialect != "sqlite":
        return None
    return Actor(env.get("RETRAINER_ACTOR") or f"local:{getpass.getuser()}", "admin")


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) of ``secret`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches a :func:`hash_secret` value (constant-time compare)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.urlsafe_b64decode(digest)
        got = hashlib.scrypt(
            secret.encode(),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=128 * int(r) * int(n) * 2,
            dklen=len(want),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the only time its full text exists outside the caller."""

    id: str
    actor: str
    role: str
    token: str
    expires_at: datetime | None


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its secret."""

    id: str
    actor: str
    role: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and as_utc(self.expires_at) <= now:
            return "expired"
        return "active"

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """A JSON-ready dict, with ``state``."""
        out: dict[str, Any] = {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()
        }
        out["state"] = self.state(now)
        return out


def _info(row: Token) -> TokenInfo:
    def t(value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    return TokenInfo(
        row.id,
        row.actor,
        row.role,
        row.created_by,
        as_utc(row.created_at),
        t(row.expires_at),
        t(row.revoked_at),
        t(row.last_used_at),
    )


class TokenStore:
    """API tokens in the store: create (audited), list, revoke (audited), authenticate."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, actor: str, role: str, *, by: Actor, expires: timedelta | None = None
    ) -> IssuedToken:
        """Issue a token for ``actor`` with ``role``; only an admin may. Audited as
        ``token.create`` (id, actor, role, expiry; never the secret)."""
        require(by, "admin", "creating tokens")
        if role not in ROLES:
            raise SpecError(f"--role: expected one of {', '.join(ROLES)}, got {role!r}")
        if not _ACTOR.match(actor):
            raise SpecError(
                f"--actor: expected a name of letters, digits and _.@:+- (at most 128), "
                f"got {actor!r}"
            )
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        digest = hash_secret(secret)

        def fn(s: Session) -> IssuedToken:
            now = self.db.clock()
            until = None if expires is None else now + expires
            s.add(
                Token(
                    id=token_id,
                    actor=actor,
                    role=role,
                    secret_hash=digest,
                    created_by=by.name,
                    created_at=now,
                    expires_at=until,
                    revoked_at=None,
                    last_used_at=None,
                )
            )
            append_event(
                s,
                at=now,
                actor=by.name,
                action="token.create",
                subject=f"token:{token_id}",
                payload={
                    "actor": actor,
                    "role": role,
                    "expires_at": None if until is None else until.isoformat(),
                },
            )
            return IssuedToken(token_id, actor, role, f"rtk_{token_id}.{secret}", until)

        return self.db.transaction(fn)

    def list(self) -> list[TokenInfo]:
        """Every token, newest first."""
        return self.db.transaction(
            lambda s: [_info(r) for r in s.scalars(select(Token).order_by(Token.created_at.desc()))]
        )

    def revoke(self, token_id: str, *, by: Actor) -> TokenInfo:
        """Revoke a token at once (audited as ``token.revoke``). Raises NotFoundError."""
        require(by, "admin", "revoking tokens")

        def fn(s: Session) -> TokenInfo:
            row = s.get(Token, token_id)
            if row is None:
                raise NotFoundError(f"no token with id {token_id!r} (see 'retrainer token list')")
            if row.revoked_at is None:
                row.revoked_at = self.db.clock()
                append_event(
                    s,
                    at=row.revoked_at,
                    actor=by.name,
                    action="token.revoke",
                    subject=f"token:{token_id}",
                    payload={"actor": row.actor, "role": row.role},
                )
            return _info(row)

        return self.db.transaction(fn)

    def authenticate(self, token: str) -> Actor:
        """The actor ``token`` speaks for. Raises AuthError naming why it was refused.

        Use is recorded: ``last_used_at``, and a ``token.used`` audit event at most once
        an hour per token.
        """
        match = _TOKEN.match(token.strip())
        if match is None:
            raise AuthError("the token is malformed (expected rtk_<id>.<secret>)")
        token_id = match.group("id")
        row = self.db.transaction(lambda s: s.get(Token, token_id))
        if row is None or not verify_secret(match.group("secret"), row.secret_hash):
            raise AuthError(f"token {token_id} is not valid")
        info = _info(row)
        state = info.state(self.db.clock())
        if state != "active":
            raise AuthError(f"token {token_id} is {state}")
        self._record_use(token_id)
        return Actor(info.actor, info.role, token_id)

    def _record_use(self, token_id: str) -> None:
        def fn(s: Session) -> None:
            row = s.get(Token, token_id)
            if row is None:
                return
            now = self.db.clock()
            last = row.last_used_at
            row.last_used_at = now
            if last is None or now - as_utc(last) >= USE_AUDIT_EVERY:
                append_event(
                    s,
                    at=now,
                    actor=row.actor,
                    action="token.used",
                    subject=f"token:{token_id}",
                    payload={"role": row.role},
                )

        self.db.transaction(fn)


@dataclass
class Authenticator:
    """Token checks for a server: a verified token is remembered for ``ttl`` seconds.

    scrypt is slow by design, too slow to pay per request; a revocation or expiry therefore
    takes effect within ``ttl`` on a running server (and at once in the CLI).
    """

    tokens: TokenStore
    ttl: float = 30.0
    _seen: dict[str, tuple[float, Actor]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, token: str) -> Actor | None:
        """The actor for ``token`` if it was verified less than ``ttl`` ago (cheap)."""
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            hit = self._seen.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def actor(self, token: str) -> Actor:
        """The actor for ``token`` (verified with scrypt unless cached). Raises AuthError."""
        hit = self.cached(token)
        if hit is not None:
            return hit
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        actor = self.tokens.authenticate(token)
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[key] = (now, actor)
        return actor

    def any_tokens(self) -> bool:
        """Whether the store holds any token that is not revoked (auth is then required)."""
        return any(t.revoked_at is None for t in self.tokens.list())
