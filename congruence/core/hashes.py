"""Content hashes: how the store keys cached embeddings and detects changed rows."""

from __future__ import annotations

import hashlib


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shard_of(account_id: str, n: int) -> int:
    """The shard (0..n-1) of an account among ``n``: a stable hash of its id (the first 32 bits
    of its MD5, signed, mod n), the same as ``store.vectors.SHARD_SQL`` computes in PostgreSQL."""
    h = int.from_bytes(hashlib.md5(account_id.encode("utf-8"), usedforsecurity=False).digest()[:4], "big", signed=True)
    return h % n
