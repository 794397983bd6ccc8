"""Opaque page cursors and next/prev links (API-NOTES §1.4)."""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import quote

from klaviyo_sim.errors import invalid_cursor
from klaviyo_sim.tables import Key


def encode(direction: str, field: str, key: Key) -> str:
    """base64url('next::<field>::<[value, id]>') without padding, like Klaviyo's `next::id::…` tokens."""
    raw = f"{direction}::{field}::{json.dumps(list(key), separators=(',', ':'))}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str, field: str) -> tuple[str, Key]:
    """(direction, key) from a cursor; 400 'Invalid cursor provided.' for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        direction, got_field, payload = raw.split("::", 2)
        value, id_ = json.loads(payload)
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        raise invalid_cursor() from None
    if direction not in ("next", "prev") or got_field != field or not isinstance(id_, str):
        raise invalid_cursor()
    return direction, (value, id_)


def page_url(base: str, path: str, params: list[tuple[str, str]], cursor: str) -> str:
    """Every original parameter re-encoded, `page[cursor]` last (recorded links, API-NOTES §1.4)."""
    kept = [(k, v) for k, v in params if k != "page[cursor]"] + [("page[cursor]", cursor)]
    return f"{base}{path}?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in kept)
