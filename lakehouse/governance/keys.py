"""API keys: ``lhk_<id>_<secret>``; the catalog stores the id, name, role and a SHA-256 of the secret only.

Roles, each including the ones before it: ``reader`` (catalog, history, lineage, metrics, queries with PII
masked), ``engineer`` (ingest, maintenance jobs, restore, lineage events), ``admin`` (keys, policies and masking,
storing PII scans, purges, retention overrides, unmasked PII and predicates, erase, audit log). What each API
route and job parameter needs is one table, ``api/authz.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.errors import AuthError, ForbiddenError, InvalidInputError

if TYPE_CHECKING:
    from lakehouse.workspace import Workspace

ROLES = ("reader", "engineer", "admin")


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: str

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}:{self.name}"

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def require(self, role: str) -> None:
        if not self.allows(role):
            raise ForbiddenError(f"this needs the {role} role; key {self.key_id} is {self.role}")


def create_key(lh: Workspace, *, name: str, role: str) -> tuple[str, str]:
    """(key id, the full key): the key is shown once and cannot be read back."""
    if role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    if not name.strip() or len(name) > 128:
        raise InvalidInputError("a key needs a name of 1..128 characters")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    lh.catalog.add_key(key_id, name=name.strip(), role=role, secret_sha256=_digest(secret), actor=lh.actor)
    lh.catalog.audit("key.create", table=None, actor=lh.actor, details={"key_id": key_id, "role": role})
    return key_id, f"lhk_{key_id}_{secret}"


TOKEN_TTL_SECONDS = 3600
"""How long a token from :func:`issue_token` lasts."""


def authenticate(lh: Workspace, token: str | None) -> Principal:
    """The principal of an API key (``lhk_<id>_<secret>``) or of a token issued from one (``lht_<id>_...``)."""
    if not token:
        raise AuthError("no API key", hint="send it as 'Authorization: Bearer lhk_...' or 'X-API-Key: lhk_...'")
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] not in ("lhk", "lht") or not token.isascii():  # keys and tokens are ASCII
        raise AuthError("malformed API key")
    record = lh.catalog.key(parts[1])
    if record is None or record["revoked_at"] is not None:
        raise AuthError("unknown or revoked API key")
    if parts[0] == "lht":
        expires, _, signature = parts[2].partition(".")
        if not expires.isdigit() or not hmac.compare_digest(signature, _sign(record, parts[1], expires)):
            raise AuthError("malformed or forged token")
        if int(expires) < time.time():
            raise AuthError("the token expired", hint="ask POST /iceberg/v1/oauth/tokens for a new one")
    elif not hmac.compare_digest(record["secret_sha256"], _digest(parts[2])):
        raise AuthError("unknown or revoked API key")
    return Principal(record["id"], record["name"], record["role"])


def issue_token(lh: Workspace, key: str, *, ttl: int = TOKEN_TTL_SECONDS) -> tuple[str, int]:
    """(a bearer token acting as ``key`` for ``ttl`` seconds, ``ttl``): the OAuth2 client-credentials exchange of
    the Iceberg REST catalog, so a client keeps the key itself out of every request. A token is the key id, its
    expiry and an HMAC over both keyed by the stored digest of the key's secret: revoking the key revokes its
    tokens, and nothing is stored per token. (Whoever can read the catalog database can mint tokens, as they
    could read every table's data files.)"""
    p = authenticate(lh, key)
    if key.startswith("lht_"):
        raise AuthError("a token cannot be exchanged for another; use the API key")
    record = lh.catalog.key(p.key_id)
    assert record is not None
    expires = str(int(time.time()) + ttl)
    return f"lht_{p.key_id}_{expires}.{_sign(record, p.key_id, expires)}", ttl


def _sign(record: dict[str, object], key_id: str, expires: str) -> str:
    secret = hashlib.sha256(f"lakehouse-token:{record['secret_sha256']}".encode()).digest()
    return hmac.new(secret, f"{key_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
