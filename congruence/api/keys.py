"""API keys: created once and shown once; only a salted hash of the secret is stored.

A key reads ``cgk_<id>_<secret>``: the id finds the row, the secret is checked against
HMAC-SHA256(salt, secret) in constant time. Secrets are 256 random bits, so a fast keyed
hash is enough (slow password hashes defend guessable secrets; these are not guessable)
and a request pays microseconds, not the ~50 ms of scrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg

from congruence.core.errors import InvalidInput, NotFound

PREFIX = "cgk"
_KEY = re.compile(r"^cgk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def create_key(conn: psycopg.Connection, name: str) -> tuple[str, KeyInfo]:
    """(the full key, to be shown once; its stored description)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("key name: expected 1 to 100 characters")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    row = conn.execute(
        "INSERT INTO api_keys (id, name, salt, secret_hash) VALUES (%s, %s, %s, %s)"
        " RETURNING id, name, created_at, revoked_at, last_used_at",
        (key_id, name, salt, _digest(salt, secret)),
    ).fetchone()
    assert row is not None
    return f"{PREFIX}_{key_id}_{secret}", KeyInfo(*row)


def list_keys(conn: psycopg.Connection) -> list[KeyInfo]:
    rows = conn.execute("SELECT id, name, created_at, revoked_at, last_used_at FROM api_keys ORDER BY created_at, id")
    return [KeyInfo(*r) for r in rows]


def revoke_key(conn: psycopg.Connection, key_id: str) -> KeyInfo:
    row = conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s"
        " RETURNING id, name, created_at, revoked_at, last_used_at",
        (key_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"unknown key id {key_id!r}")
    return KeyInfo(*row)


def verify_key(conn: psycopg.Connection, key: str, touch: bool = True) -> str | None:
    """The key's id when ``key`` is a live key, else None (never says which part was wrong).
    touch: record that it was used (a read-only server does not)."""
    m = _KEY.match(key)
    if m is None:
        return None
    key_id, secret = m.groups()
    row = conn.execute("SELECT salt, secret_hash, revoked_at FROM api_keys WHERE id = %s", (key_id,)).fetchone()
    if row is None:
        _digest(b"\0" * 16, secret)  # same work for unknown ids: no timing hint about which ids exist
        return None
    salt, stored, revoked = row
    ok = hmac.compare_digest(_digest(bytes(salt), secret), bytes(stored))
    if not ok or revoked is not None:
        return None
    if not touch:
        return str(key_id)
    # to the minute: a busy key would otherwise write a row on every request
    conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = %s"
        " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        (key_id,),
    )
    return str(key_id)
