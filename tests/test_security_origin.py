"""The API key goes only to the configured base URL's scheme, host and port: never to a host a next link names."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Config, Secret, default_spec_path
from engine.errors import ApiError, ConfigError
from engine.http import HttpClient
from engine.paginators import Request, build_paginator
from engine.spec import PaginationSpec, Spec
from tests.hostile_api import HostileApi, send, metric
from tests.klx_testing import SIM_NOW, rows, sync, write_config

KEY = "pk_origin_0123456789abcdefghij"


def next_link_server(link_for: dict[str, str]) -> HostileApi:
    """Serves one metric per page; the page at a path and query links to `link_for[that]`, else ends."""

    def respond(handler, hit) -> None:
        send(handler, 200, {"data": [metric(len(hit.path))], "links": {"next": link_for.get(hit.path)}})

    return HostileApi(respond)


def test_next_link_to_another_host_fails_the_stream_and_sends_nothing_there(tmp_path: Path) -> None:
    with HostileApi(lambda handler, hit: send(handler, 200, {"data": []})) as elsewhere:
        with next_link_server({"/api/metrics": f"{elsewhere.url}/api/metrics?page=2"}) as api:
            config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=api.url, database=tmp_path / "x.duckdb")
            (failed,) = sync(config, KEY, now=SIM_NOW).failed  # the stream fails; the run goes on
        assert elsewhere.hits == []
    assert str(failed.error).startswith(f"Klaviyo sent a link to {elsewhere.url} (stream metrics); klx sends the API key only to {api.url}")
    assert KEY not in str(failed.error)
    assert [h.headers["authorization"] for h in api.hits] == [f"Klaviyo-API-Key {KEY}"]
    assert rows(tmp_path / "x.duckdb", "select table_name from information_schema.tables where table_name = 'kl_rudder_metrics'") == []


def test_the_key_is_never_a_session_header() -> None:
    spec = Spec.from_yaml(default_spec_path())
    client = HttpClient(spec.api, Secret(KEY), "http://127.0.0.1:9")
    assert all(KEY not in value for value in client.session.headers.values())


@pytest.mark.parametrize(
    "link",
    [
        "http://{host}/api/metrics?page=2",  # a downgrade to http under an https base
        "https://{host}:8443/api/metrics?page=2",  # another port
        "https://evil.example/api/metrics?page=2",
        "https://{host}@evil.example/api/metrics",  # credentials trick: the host is evil.example
        "//evil.example/api/metrics",  # scheme-relative
        "ftp://{host}/api/metrics",
    ],
)
def test_links_off_the_base_origin_are_refused_before_sending(link: str) -> None:
    spec = Spec.from_yaml(default_spec_path())
    sent: list[str] = []
    client = HttpClient(spec.api, Secret(KEY), "https://api.example.test")
    client.session.send = lambda request, **kw: sent.append(request.url)  # nothing may reach the transport
    paginator = build_paginator(PaginationSpec(type="next_link", options={"next": "links.next"}, where="x"))
    first = Request("https://api.example.test/api/metrics", {})
    nxt = paginator.next_request(first, {"links": {"next": link.format(host="api.example.test")}}, 1)
    with pytest.raises(ApiError) as raised:
        client.get(nxt.url, nxt.params, stream="metrics", endpoint="/api/metrics", tier=None)
    assert sent == []
    assert "(stream metrics); klx sends the API key only to https://api.example.test" in str(raised.value)
    assert "evil.example" in str(raised.value) or "api.example.test" in str(raised.value)


def test_a_relative_next_link_is_followed_on_the_base_url(tmp_path: Path) -> None:
    links = {"/api/metrics": "/api/metrics?page=2", "/api/metrics?page=2": "?page=3"}
    with next_link_server(links) as api:
        config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=api.url, database=tmp_path / "x.duckdb")
        summary = sync(config, KEY, now=SIM_NOW)
    assert [h.path for h in api.hits] == ["/api/metrics", "/api/metrics?page=2", "/api/metrics?page=3"]
    assert summary.streams[0].pages == 3
    assert all(h.headers["authorization"] == f"Klaviyo-API-Key {KEY}" for h in api.hits)


@pytest.mark.parametrize(("value", "kind"), [({"href": "/x"}, "an object"), (5, "a number"), (["/x"], "an array"), (True, "a boolean")])
def test_a_next_link_that_is_not_a_string_is_an_api_error(value: object, kind: str) -> None:
    paginator = build_paginator(PaginationSpec(type="next_link", options={"next": "links.next"}, where="x"))
    with pytest.raises(ApiError) as raised:
        paginator.next_request(Request("https://x.test/a", {}), {"links": {"next": value}}, 1)
    assert str(raised.value) == f"the API's next link (links.next) is {kind}, not a URL"


def test_a_redirect_is_not_followed_and_names_its_host(tmp_path: Path) -> None:
    with HostileApi(lambda handler, hit: send(handler, 200, {"data": []})) as elsewhere:
        with HostileApi(lambda handler, hit: send(handler, 302, b"", {"Location": f"{elsewhere.url}/steal"})) as api:
            config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=api.url, database=tmp_path / "x.duckdb")
            (failed,) = sync(config, KEY, now=SIM_NOW).failed  # the stream fails; the run goes on
        assert elsewhere.hits == []
    assert str(failed.error) == (
        f"Klaviyo 302 on GET /api/metrics (stream metrics): redirected to {elsewhere.url}; klx does not follow redirects"
    )


@pytest.mark.parametrize("key", ["pk_abc\ndef", "pk_abc def", "pk_abc\x1b[31m", "pk_abc\x00", "pk_abcé"])
def test_a_key_with_whitespace_or_control_characters_is_a_config_error(tmp_path: Path, key: str) -> None:
    config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url="http://127.0.0.1:9", database=tmp_path / "x.duckdb")
    with pytest.raises(ConfigError) as raised:
        Config.from_yaml(config, env={"KLAVIYO_API_KEY": key})
    assert str(raised.value) == (
        f"{config}:2: source.api_key: must be printable ASCII without spaces, line breaks or control characters"
    )
    assert "pk_abc" not in str(raised.value)


@pytest.mark.parametrize("key", ["pk_line\nbreak_0123456789", "pk_euro_\u20ac_0123456789"])
def test_a_key_no_header_can_hold_fails_without_quoting_it(key: str) -> None:
    # Config refuses such keys at load; this is the layer below, for a key reaching HttpClient another way.
    spec = Spec.from_yaml(default_spec_path())
    with HostileApi(lambda handler, hit: send(handler, 200, {"data": []})) as api:
        client = HttpClient(spec.api, Secret(key), api.url)
        with pytest.raises(ApiError) as raised:
            client.get(client.url_for("/api/metrics"), {}, stream="metrics", endpoint="/api/metrics", tier=None)
    assert str(raised.value) == "the Authorization header is not a valid HTTP header value (stream metrics)"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert api.hits == []
