"""klx installed from a wheel runs from any folder: the spec and example config ship inside the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.klx_testing import ROOT

SOURCES = ("engine", "specs", "klaviyo_sim", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "config.example.yaml")


def _can_build_offline() -> bool:
    try:
        from setuptools.command import bdist_wheel  # noqa: F401  (setuptools >= 70.1)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the klx wheel installed; its dependencies come from this test venv's site-packages."""
    if not _can_build_offline() and os.environ.get("CI") != "true":
        pytest.skip("building the wheel offline needs setuptools>=70.1: pip install -e '.[test]'")
    work = tmp_path_factory.mktemp("install")
    # Build from a copy: the build leaves build/ and *.egg-info behind, and the copy proves the sdist file set suffices.
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _ok([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(work / "dist"), str(src)])
    (wheel,) = (work / "dist").glob("klx-*.whl")
    venv = work / "venv"
    _ok([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = Path(_ok([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    # The dependencies (duckdb, sqlglot, ...) are this venv's: a plain path line, so its .pth files (the
    # editable klx's finder among them) are not run and klx itself comes only from the wheel.
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _ok([*pip, "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)])
    return venv


def _ok(argv: list[str], cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_installed_klx_is_the_wheel_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = _ok([str(installed / "bin" / "python"), "-c", "import engine, specs; print(engine.__file__); print(specs.__file__)"], cwd=tmp_path)
    assert all(line.startswith(str(installed)) for line in where.splitlines()), where


def test_wheel_install_runs_demo_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    out = _ok([str(installed / "bin" / "klx"), "demo", "--scale", "0.05"], cwd=tmp_path)
    assert "Loaded into klaviyo.duckdb." in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("total")] == ["total"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["klaviyo.duckdb"]


def test_wheel_install_init_writes_the_bundled_example(installed: Path, tmp_path: Path) -> None:
    out = _ok([str(installed / "bin" / "klx"), "init"], cwd=tmp_path)
    assert out == "wrote config.yaml; set KLAVIYO_API_KEY, choose resources and schedule, then: klx check config.yaml\n"
    assert (tmp_path / "config.yaml").read_text() == (ROOT / "config.example.yaml").read_text()
