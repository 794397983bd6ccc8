"""What HttpClient sends and where: base URL, origin of links, the spec's headers, the URL in messages, per-attempt deadlines."""

from __future__ import annotations

import json
import time

import pytest

from engine.config import Secret
from engine.errors import ApiError
from engine.http import HttpClient, origin_of
from tests.hostile_api import HostileApi, send, trickle
from tests.test_http_errors import API, KEY, Clock, always, client, get, klaviyo_error


def test_the_spec_base_url_is_used_when_the_config_names_none() -> None:
    assert HttpClient(API, Secret(KEY)).url_for("/api/metrics") == "https://a.klaviyo.com/api/metrics"


def test_a_spec_path_is_put_on_the_base_url_and_its_own_path() -> None:
    assert HttpClient(API, Secret(KEY), "https://api.example.test/v1/").url_for("/api/metrics") == "https://api.example.test/v1/api/metrics"


def test_a_base_url_with_a_trailing_slash_sends_one_slash() -> None:
    with always(200, {"data": []}) as api:
        get(client(api.url + "/"))
    assert [h.path for h in api.hits] == ["/api/metrics?page%5Bsize%5D=10"]


@pytest.mark.parametrize("base", ["ftp://a.klaviyo.com", "a.klaviyo.com", "https://pk_user@a.klaviyo.com", "https:///api"])
def test_a_base_url_that_is_not_an_absolute_http_url_is_an_api_error(base: str) -> None:
    with pytest.raises(ApiError) as raised:
        HttpClient(API, Secret(KEY), base)
    assert str(raised.value).startswith("base URL ") and str(raised.value).endswith(" is not an absolute http(s) URL")
    assert "pk_user" not in str(raised.value)


def test_the_spec_headers_and_the_key_are_sent() -> None:
    with always(200, {"data": []}) as api:
        get(client(api.url))
    (hit,) = api.hits
    assert hit.headers["revision"] == API.headers["revision"] and hit.headers["accept"] == API.headers["accept"]
    assert hit.headers["authorization"] == f"Klaviyo-API-Key {KEY}"


@pytest.mark.parametrize(
    ("base", "link"),
    [
        ("https://api.example.test", "https://api.example.test:443/api/metrics?page=2"),
        ("http://api.example.test", "http://API.example.test:80/api/metrics?page=2"),
        ("HTTPS://API.EXAMPLE.TEST:443", "https://api.example.test/api/metrics?page=2"),
    ],
)
def test_a_link_naming_the_default_port_or_another_case_is_on_the_base_origin(base: str, link: str) -> None:
    assert origin_of(base) == origin_of(link)


def test_a_link_with_credentials_is_refused_even_to_the_base_host() -> None:
    with always(200, {"data": []}) as api:
        http = client(api.url)
        link = api.url.replace("http://", "http://pk_user:pw@") + "/api/metrics?page=2"
        with pytest.raises(ApiError) as raised:
            http.get(link, {}, stream="metrics", endpoint="/api/metrics", tier=None)
    assert api.hits == []
    assert str(raised.value).startswith(f"Klaviyo sent a link to {api.url} (stream metrics); klx sends the API key only to {api.url}")


def test_the_url_in_a_message_reads_as_written() -> None:
    filter_ = "and(greater-or-equal(updated,2024-01-01T00:00:00+00:00),equals(name,'a b'))"
    with always(400, klaviyo_error(400, "bad")) as api:
        http = client(api.url)
        with pytest.raises(ApiError) as raised:
            http.get(http.url_for("/api/metrics"), {"filter": filter_}, stream="metrics", endpoint="/api/metrics", tier=None)
    shown = "/api/metrics?filter=and(greater-or-equal(updated,2024-01-01T00:00:00%2B00:00),equals(name,'a+b'))"
    assert str(raised.value) == f"Klaviyo 400 on GET {shown} (stream metrics): bad"


def test_a_next_link_keeps_its_query_in_messages_and_its_key_masked() -> None:
    with always(400, klaviyo_error(400, "bad cursor")) as api:
        http = client(api.url)
        with pytest.raises(ApiError) as raised:
            http.get(f"{api.url}/api/metrics?page%5Bcursor%5D=abc&echo={KEY}", {}, stream="metrics", endpoint="/api/metrics", tier=None)
    assert str(raised.value) == "Klaviyo 400 on GET /api/metrics?page%5Bcursor%5D=abc&echo=*** (stream metrics): bad cursor"


def test_a_next_link_selecting_a_bucket_in_its_query_counts_against_it_and_the_bucket_is_shared() -> None:
    with always(200, {"data": []}) as api:
        http = client(api.url)
        http.get(f"{api.url}/api/profiles?additional-fields%5Bprofile%5D=predictive_analytics", {}, stream="profiles",
                 endpoint="/api/profiles", tier="L")
        http.get(f"{api.url}/api/segments/1/profiles", {"additional-fields[profile]": "predictive_analytics"}, stream="segment_profiles",
                 endpoint="/api/segments/{id}/profiles", tier="M")
        http.get(f"{api.url}/api/profiles", {}, stream="profiles", endpoint="/api/profiles", tier="L")
    assert len(http.budgets["bucket:predictive_analytics"].sent) == 2
    assert len(http.budgets["path:/api/profiles"].sent) == 2
    assert sorted(http.budgets) == ["bucket:predictive_analytics", "path:/api/profiles", "path:/api/segments/{id}/profiles"]


def test_each_attempt_gets_what_is_left_of_the_total_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engine.http.random.random", lambda: 0.0)
    clock = Clock()

    with always(503, klaviyo_error(503, "down"), {"Retry-After": "25"}) as api:
        http = client(api.url, clock, request_timeout_seconds=30, total_seconds=59)
        timeouts = []
        send_get = http.session.get
        http.session.get = lambda url, **kw: timeouts.append(kw["timeout"]) or send_get(url, **kw)
        with pytest.raises(ApiError, match=r"gave up after 3 attempts in 50s"):
            get(http)
    # Connect within 10 s at most; the third attempt, 50 s in, has 9 s left.
    assert timeouts == [(10.0, 30), (10.0, 30), (9.0, 9.0)]


def test_a_deadline_is_kept_after_the_watchdog_went_idle() -> None:
    body = json.dumps({"data": [], "links": {"next": None}}).encode()

    def respond(handler, hit) -> None:
        if len(api.hits) == 1:
            send(handler, 200, body)
        else:
            trickle(handler, body, 0.05, api.stopping)

    with HostileApi(respond) as api:
        http = client(api.url, real_time=True, request_timeout_seconds=0.5, max_attempts=1)
        get(http)
        time.sleep(0.3)  # nothing in flight: the deadline thread ends
        began = time.monotonic()
        with pytest.raises(ApiError) as raised:
            get(http)
        took = time.monotonic() - began
    assert str(raised.value) == "Klaviyo did not answer GET /api/metrics?page[size]=10 within 0.5s (stream metrics)"
    assert took < 1.2  # the whole body would take 1.6 s


def test_the_environment_proxy_carries_the_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY is read once (not by requests on each request) and still used: the proxy gets the absolute URL."""
    with always(200, {"data": []}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        http = client("http://klaviyo.invalid")
        get(http)
        get(http)
    assert [h.path for h in proxy.hits] == ["http://klaviyo.invalid/api/metrics?page%5Bsize%5D=10"] * 2
    assert proxy.hits[0].headers["authorization"] == f"Klaviyo-API-Key {KEY}"


def test_no_proxy_is_read_for_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests go only to the base URL's origin (a link elsewhere is refused), so its proxies are all that is read."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "internal.test")
    assert client("https://a.klaviyo.com").proxies["https"] == "http://proxy.invalid:3128"
    assert client("https://internal.test:8443").proxies == {}


def test_the_ca_bundle_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("ca.pem", "curl.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")  # it must exist (test_cli.py); read by TLS only
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    assert client("https://a.klaviyo.com").session.verify == str(tmp_path / "ca.pem")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "curl.pem"))
    assert client("https://a.klaviyo.com").session.verify == str(tmp_path / "curl.pem")
    monkeypatch.delenv("CURL_CA_BUNDLE")
    assert client("https://a.klaviyo.com").session.verify is True


def test_a_netrc_entry_for_the_host_does_not_replace_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """requests would send basic auth from ~/.netrc in place of the key header."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    with always(200, {"data": []}) as api:
        get(client(api.url))
    assert api.hits[0].headers["authorization"] == f"Klaviyo-API-Key {KEY}"
