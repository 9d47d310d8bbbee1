"""Sticky bucketing: ``bucket = xxh64(salt + ":" + key) mod 10_000``.

xxh64 (seed 0) over the UTF-8 bytes is portable: any language with an xxhash binding gets the
same bucket, so replicas, restarts and other implementations agree. Python's ``hash()`` is
randomised per process and must never be used here. Golden vectors in
``tests/golden/buckets.json`` pin the mapping forever.
"""

from __future__ import annotations

from xxhash import xxh64_intdigest

from config.schema import HASH_BUCKETS


def salt_prefix(salt: str) -> bytes:
    """The bytes hashed before every key of one salt; computed once per routing table."""
    return salt.encode() + b":"


def bucket(prefix: bytes, key: str) -> int:
    """The bucket in ``[0, 10_000)`` of ``key`` under a salt prefix from ``salt_prefix``."""
    return int(xxh64_intdigest(prefix + key.encode("utf-8", "surrogateescape"))) % HASH_BUCKETS
