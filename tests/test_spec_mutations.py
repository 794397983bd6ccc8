"""Any single wrong value anywhere in the Klaviyo spec is a SpecError naming a line, never a traceback.

Every node of specs/klaviyo.yaml (mapping, list or scalar) is replaced in turn by each value below and the
spec validated again. Keys added to the spec later are covered without touching this file.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from engine.errors import SpecError
from engine.spec import Spec
from engine.yaml_source import load_yaml
from tests.klx_testing import ROOT

SPEC = ROOT / "specs" / "klaviyo.yaml"
# A null, a negative number, a huge one, an unusable string and a list holding a null: together they
# trip every kind of check (type, range, template, placeholder, element type).
BAD_VALUES = [None, -1, 10**30, "{x}\n", [1, None]]


def nodes(node: Any, path: tuple = ()) -> Iterator[tuple]:
    """The path of every node below the top."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield path + (key,)
        yield from nodes(child, path + (key,))


def test_every_node_of_the_spec_is_checked_when_wrong() -> None:
    raw = load_yaml(SPEC, SpecError)
    accepted, checked = [], 0
    for path in nodes(raw):
        for bad in BAD_VALUES:
            parent = raw
            for key in path[:-1]:
                parent = parent[key]
            original, parent[path[-1]] = parent[path[-1]], copy.deepcopy(bad)  # loading never mutates its input
            try:
                Spec.from_data(raw, SPEC)
            except SpecError as err:  # anything else fails the test with its traceback
                assert re.match(rf"^{re.escape(str(SPEC))}:\d+: ", str(err)), str(err)
                assert "\n" not in err.message, err.message
                checked += 1
            else:
                accepted.append((path, bad))
            finally:
                parent[path[-1]] = original
    # Some replacements are legitimate (a header value of -1 is sent as "-1"); most are not.
    assert checked > 4 * len(accepted), accepted
    Spec.from_data(raw, SPEC)  # and the spec is whole again
