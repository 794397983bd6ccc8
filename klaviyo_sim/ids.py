"""Deterministic ids in Klaviyo's formats and small hashing helpers."""

from __future__ import annotations

import uuid

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SHORT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_MASK = (1 << 64) - 1


def mix(*parts: int) -> int:
    """A stable 64-bit hash of integers (Python's hash() is not guaranteed stable): a cheap
    multiply-xor combine, then one splitmix64 finalizer; rendering calls this a lot."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = ((h ^ (part & _MASK)) * 0x100000001B3 + 0x632BE59BD9B4E019) & _MASK
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK
    return h ^ (h >> 31)


def unit(*parts: int) -> float:
    """A float in [0, 1) derived from `parts`."""
    return (mix(*parts) >> 11) / float(1 << 53)


def ulid(ms: int, rand80: int) -> str:
    """A 26-char Crockford ULID: 48-bit millisecond time then 80 random bits (sorts by time)."""
    value = ((ms & ((1 << 48) - 1)) << 80) | (rand80 & ((1 << 80) - 1))
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def short_id(*parts: int) -> str:
    """A 6-char id like Klaviyo's list/segment/metric/flow/template ids (e.g. 'Y6nRLr')."""
    h = mix(*parts)
    chars = []
    for _ in range(6):
        chars.append(_SHORT[h % len(_SHORT)])
        h //= len(_SHORT)
    return "".join(chars)


def uuid_from(*parts: int) -> str:
    """A version-4-shaped UUID string (tags, event uuids, error ids)."""
    return str(uuid.UUID(int=(mix(*parts) << 64) | mix(*parts, 1), version=4))


def hex32(*parts: int) -> str:
    """A 32-hex id (attributions)."""
    return f"{mix(*parts):016x}{mix(*parts, 7):016x}"
