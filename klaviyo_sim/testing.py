"""Small HTTP helpers for tests that drive a running Simulator."""

from __future__ import annotations

import requests

from klaviyo_sim.server import Simulator

HEADERS = {"Authorization": "Klaviyo-API-Key pk_sim_demo_key", "revision": "2026-07-15",
           "Accept": "application/vnd.api+json"}


def get(sim: Simulator, path: str, params: dict | None = None, headers: dict | None = None) -> requests.Response:
    """GET against the simulator with the default key and revision unless `headers` overrides them."""
    return requests.get(sim.url + path, params=params, headers=HEADERS if headers is None else headers, timeout=10)


def follow(sim: Simulator, path: str, params: dict | None = None, headers: dict | None = None,
           max_pages: int | None = None) -> list[dict]:
    """Page bodies, following links.next verbatim until it is null (or `max_pages` pages)."""
    headers = HEADERS if headers is None else headers
    bodies = []
    response = get(sim, path, params, headers)
    while True:
        if response.status_code != 200:
            raise AssertionError(f"{response.status_code}: {response.text}")
        body = response.json()
        bodies.append(body)
        if not body["links"]["next"] or len(bodies) == max_pages:
            return bodies
        response = requests.get(body["links"]["next"], headers=headers, timeout=10)
