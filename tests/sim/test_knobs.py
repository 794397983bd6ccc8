"""Rate limits, injected faults, latency and the request log."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import requests

from klaviyo_sim import FaultConfig, Simulator
from klaviyo_sim.ratelimit import RateLimiter
from klaviyo_sim.testing import get

NOW = datetime(2026, 9, 1, tzinfo=timezone.utc)


@pytest.fixture
def small():
    with Simulator(seed=3, scale=0.2, now=NOW) as simulator:
        yield simulator


def test_rate_limit_is_off_by_default(small):
    assert all(get(small, "/api/accounts").status_code == 200 for _ in range(5))


def test_enforced_rate_limit_throttles_with_retry_after(small):
    small.rate_limits = True
    assert get(small, "/api/accounts").status_code == 200  # accounts tier: 1/s burst
    response = get(small, "/api/accounts")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["errors"][0]
    assert error["code"] == "throttled" and error["detail"].startswith("Request was throttled. Expected available in")


def test_predictive_analytics_has_its_own_smaller_bucket():
    now = [0.0]
    limiter = RateLimiter(enforce=True, clock=lambda: now[0])
    buckets = [("/api/profiles", 75, 750), ("predictive_analytics", 10, 150)]
    verdicts = [limiter.hit(buckets) for _ in range(11)]
    assert [v.allowed for v in verdicts] == [True] * 10 + [False]
    now[0] = 1.0
    assert limiter.hit(buckets).allowed


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_server_error_faults_return_json_error_bodies(small, status):
    small.faults.queue([status])
    response = get(small, "/api/lists")
    assert response.status_code == int(status)
    assert response.json()["errors"][0]["status"] == int(status)
    assert get(small, "/api/lists").status_code == 200


def test_reset_fault_closes_the_connection_without_a_response(small):
    small.faults.queue(["reset"])
    with pytest.raises(requests.ConnectionError):
        get(small, "/api/lists")


def test_truncated_fault_sends_a_200_with_cut_off_json(small):
    small.faults.queue(["truncated"])
    response = get(small, "/api/lists")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_slow_fault_delays_the_response(small):
    small.faults.configure(FaultConfig(slow_seconds=0.3))
    small.faults.queue(["slow"])
    start = time.monotonic()
    assert get(small, "/api/lists").status_code == 200
    assert time.monotonic() - start >= 0.3


def test_fault_draws_are_reproducible_from_the_seed():
    def draws(seed: int) -> list:
        faults = Simulator(seed=1, scale=0.2, now=NOW, faults=FaultConfig(rate=0.5, seed=seed)).faults
        return [faults.draw() for _ in range(40)]
    assert draws(9) == draws(9) != draws(10)
    assert any(d is None for d in draws(9)) and any(d is not None for d in draws(9))


def test_latency_and_request_log(small):
    requests.post(f"{small.url}/_sim/config", json={"latency": 0.2}, timeout=5)
    start = time.monotonic()
    get(small, "/api/tags", {"page[size]": "5"})
    assert time.monotonic() - start >= 0.2
    assert small.request_log[-1] == ("GET", "/api/tags", {"page[size]": "5"})


def test_control_endpoint_queues_faults(small):
    assert requests.post(f"{small.url}/_sim/faults", json={"queue": ["503"]}, timeout=5).status_code == 200
    assert get(small, "/api/lists").status_code == 503


def test_limit_fraction_cuts_every_limit_and_the_headers_say_so():
    now = [0.0]
    limiter = RateLimiter(enforce=True, clock=lambda: now[0], fraction=0.25)
    buckets = [("/api/profiles", 75, 750), ("predictive_analytics", 10, 150)]
    verdicts = [limiter.hit(buckets) for _ in range(3)]
    # A quarter of 10/s is 2/s for the predictive bucket; the headers describe the cut steady window.
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert (verdicts[0].limit, verdicts[0].remaining) == (187, 186)
    assert limiter.tiers == {"/api/profiles": (18, 187), "predictive_analytics": (2, 37)}
    assert limiter.counted == {"/api/profiles": 2, "predictive_analytics": 2}
    now[0] = 1.0
    assert limiter.hit([("/api/accounts", 1, 15)]).allowed  # never cut below one request


def test_a_client_that_hangs_up_before_its_answer_prints_no_traceback(capfd):
    # Ctrl-C on `klx demo` cuts klx's requests in flight: the simulator's writes then hit a closed socket, and
    # socketserver printed a BrokenPipeError traceback per request over the demo's own summary.
    import socket
    import struct

    with Simulator(seed=3, scale=0.05, now=NOW, latency=0.3) as simulator:
        host, port = simulator.url.removeprefix("http://").split(":")
        for _ in range(3):
            client = socket.create_connection((host, int(port)))
            client.sendall(f"GET /api/accounts HTTP/1.1\r\nHost: {host}\r\nAuthorization: Klaviyo-API-Key {simulator.api_key}\r\n"
                           "revision: 2026-07-15\r\n\r\n".encode())
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # RST: the answer, sent 0.3 s later, finds the connection gone
        time.sleep(1.0)
        assert get(simulator, "/api/accounts").status_code == 200  # it serves on
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred during processing" not in err


def test_klx_sim_on_a_port_in_use_exits_2_with_one_line(capsys):
    # README's `klx sim --port 8765` with a simulator already there: it was "internal error: OSError: [Errno 98]".
    from engine.cli import main

    with Simulator(seed=3, scale=0.05, now=NOW) as running:
        port = int(running.url.rsplit(":", 1)[1])
        assert main(["sim", "--port", str(port)]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot serve on 127.0.0.1:{port}: Address already in use\n  hint: pick another --port, or --port 0 for a free one\n"
    )


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--port", "99999", "argument --port: 99999 is not a port (0 to 65535; 0 picks a free one)"),
    ("--scale", "-1", "argument --scale: -1 is not above 0 (1 is about 1k profiles and 10k events)"),
])
def test_klx_sim_refuses_a_flag_out_of_range_naming_it(capsys, flag, value, message):
    # Both were internal errors: "OverflowError: bind(): port must be 0-65535", "TypeError: '>' not supported ... 'complex'".
    from engine.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["sim", flag, value])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"klx sim: error: {message}"
