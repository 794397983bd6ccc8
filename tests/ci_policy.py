"""Under CI=true nothing skips: a skipped test is reported as a failure with its reason.

Locally a test may skip when something outside the repo is missing (../shared, a PostgreSQL server);
CI lays all of that out, so there a skip means a test silently did not run.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.klx_testing import in_ci


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"
