"""--update-golden: rewrite tests/golden/<dialect>/<case>.sql from the current output instead of comparing."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ from the current output; review them as a diff",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """check(relative_path, text): compare `text` with tests/golden/<relative_path>, or rewrite it."""
    update = request.config.getoption("--update-golden")

    def check(relative_path: str, text: str) -> None:
        path = GOLDEN_DIR / relative_path
        text = text.rstrip("\n") + "\n"
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        if not path.exists():
            pytest.fail(f"no golden file {path}; run pytest --update-golden and review the new file")
        assert text == path.read_text(), f"{path} differs; run pytest --update-golden if the change is intended"

    return check
