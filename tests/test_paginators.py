"""Paginators: next links are followed verbatim, offset and page-number stop correctly, loops are caught."""

from __future__ import annotations

import pytest

from engine.errors import ApiError, SpecError
from engine.paginators import Request, build_paginator, first_request
from engine.spec import PaginationSpec


def spec(kind: str, **options) -> PaginationSpec:
    return PaginationSpec(type=kind, options=options, where="spec.yaml:3")


def test_next_link_carries_every_parameter_of_the_link() -> None:
    p = build_paginator(spec("next_link", next="links.next"))
    link = "https://a.klaviyo.com/api/profiles?page%5Bsize%5D=100&filter=greater-than%28updated%2C2024-01-01T00%3A00%3A00%2B00%3A00%29&page%5Bcursor%5D=abc"
    nxt = p.next_request(Request("https://a.klaviyo.com/api/profiles", {}), {"links": {"next": link}}, 100)
    assert nxt == Request("https://a.klaviyo.com/api/profiles",
                          {"page[size]": "100", "filter": "greater-than(updated,2024-01-01T00:00:00+00:00)", "page[cursor]": "abc"})
    assert p.next_request(nxt, {"links": {"next": None}}, 3) is None


def test_next_link_seen_twice_is_an_error() -> None:
    p = build_paginator(spec("next_link", next="links.next"))
    page = {"links": {"next": "https://x/api/a?page%5Bcursor%5D=1"}}
    p.next_request(Request("https://x/api/a", {}), page, 1)
    with pytest.raises(ApiError, match="same next link twice: https://x/api/a"):
        p.next_request(Request("https://x/api/a", {}), page, 1)


def test_offset_paginator_stops_on_a_short_page() -> None:
    p = build_paginator(spec("offset", limit=2))
    first = first_request(p, Request("https://x/items", {"q": "1"}))
    assert first.params == {"q": "1", "offset": "0", "limit": "2"}
    second = p.next_request(first, {}, 2)
    assert second.params["offset"] == "2"
    assert p.next_request(second, {}, 1) is None


def test_page_number_paginator_stops_on_an_empty_page() -> None:
    p = build_paginator(spec("page_number", page_param="p", start=1))
    first = first_request(p, Request("https://x/items", {}))
    second = p.next_request(first, {}, 5)
    assert (first.params, second.params) == ({"p": "1"}, {"p": "2"})
    assert p.next_request(second, {}, 0) is None


def test_unknown_pagination_names_the_known_ones() -> None:
    with pytest.raises(SpecError) as raised:
        build_paginator(spec("cursorish"))
    assert str(raised.value) == "spec.yaml:3: pagination.type: unknown 'cursorish'; known: next_link, offset, page_number"
