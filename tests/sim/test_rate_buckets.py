"""One account-wide predictive-analytics bucket (API-NOTES §1.6, §3.10): the simulator enforces it, klx shares it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Secret
from engine.http import HttpClient
from engine.spec import Spec
from klaviyo_sim import Simulator
from tests.klx_testing import ROOT, SIM_NOW, rows, sync, write_config

PREDICTIVE = "additional-fields[profile]=subscriptions,predictive_analytics"


@pytest.fixture
def limited() -> Iterator[Simulator]:
    with Simulator(seed=3, scale=0.25, now=SIM_NOW, rate_limits=True) as simulator:
        yield simulator


def call(sim: Simulator, path: str, query: str) -> int:
    headers = {"authorization": f"Klaviyo-API-Key {sim.api_key}", "revision": "2026-07-15"}
    return sim.handle_api("GET", path, query, headers, sim.url).status


def test_simulator_counts_predictive_reads_of_every_path_in_one_bucket(limited: Simulator) -> None:
    segment = next(iter(limited.store.members))
    assert [call(limited, "/api/profiles", PREDICTIVE) for _ in range(10)] == [200] * 10
    # The 11th predictive read within the second is refused even on another path, whose L tier has room...
    assert call(limited, f"/api/segments/{segment}/profiles", PREDICTIVE) == 429
    # ...while reads without predictive analytics only count against their own endpoint.
    assert call(limited, "/api/profiles", "additional-fields[profile]=subscriptions") == 200
    assert call(limited, f"/api/segments/{segment}/profiles", "") == 200
    assert limited.limiter.refused == 1


def test_klx_selects_the_named_bucket_from_params_and_from_next_links() -> None:
    spec = Spec.from_yaml(ROOT / "specs" / "klaviyo.yaml")
    http = HttpClient(spec.api, Secret("pk_test"), "http://127.0.0.1:1")
    first = http._budgets("http://127.0.0.1:1/api/profiles", {"additional-fields[profile]": "subscriptions,predictive_analytics"}, "/api/profiles", "L")
    link = "http://127.0.0.1:1/api/segments/abc/profiles?additional-fields%5Bprofile%5D=predictive_analytics&page%5Bcursor%5D=x"
    second = http._budgets(link, {}, "/api/segments/{parent.id}/profiles", "L")
    plain = http._budgets("http://127.0.0.1:1/api/profiles", {"additional-fields[profile]": "subscriptions"}, "/api/profiles", "L")
    assert first[1] is second[1]  # one budget for the bucket, across paths
    assert first[0] is not second[0] and first[0] is plain[0]  # each path keeps its own tier budget
    assert len(plain) == 1
    assert sorted(http.budgets) == ["bucket:predictive_analytics", "path:/api/profiles", "path:/api/segments/{parent.id}/profiles"]
    assert first[1].windows[0][1] == 10 and first[1].windows[1][1] == 150
    http.close()


def test_profile_reads_of_three_streams_draw_no_429(limited: Simulator, tmp_path: Path) -> None:
    # Pages of 20 make 13 profile pages, plus 8 segments: twice the 10 predictive reads allowed a second.
    spec = tmp_path / "klaviyo.yaml"
    text = (ROOT / "specs" / "klaviyo.yaml").read_text()
    profiles = "  profiles:\n    path: /api/profiles\n    scopes: [profiles:read]\n    rate_limit: L\n    page_size: "
    spec.write_text(text.replace(profiles + "100\n", profiles + "20\n"))
    assert spec.read_text() != text
    resources = {"profiles": "full_refresh", "global_exclusions": "full_refresh", "segments_profiles": "full_refresh"}
    config = write_config(tmp_path, resources, base_url=limited.url, database=tmp_path / "klx.duckdb", spec=spec)
    began = time.monotonic()
    sync(config, limited.api_key, now=SIM_NOW, sleep=time.sleep)
    assert limited.limiter.refused == 0
    predictive = [q for _, p, q in limited.request_log if "predictive_analytics" in q.get("additional-fields[profile]", "")]
    assert len(predictive) >= 20
    assert time.monotonic() - began >= (len(predictive) - 10) / 10 * 1.0  # the bucket paced them
    landed = rows(tmp_path / "klx.duckdb", 'select count(*) as n from "kl_rudder_profiles"')[0]["n"]
    assert landed == len(limited.truth("profiles"))
