"""The bundled example config: where it is wherever klx is installed, and `klx init` writing it as a starter."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

EXAMPLE_NAME = "config.example.yaml"
_ROOT = Path(__file__).resolve().parent.parent


def example_config_path() -> Path:
    """config.example.yaml: inside the installed `specs` package (a wheel), else at the checkout's top level."""
    # setup.py copies the top-level file into the built specs package; an editable install reads the original.
    for candidate in (_ROOT / "specs" / EXAMPLE_NAME, _ROOT / EXAMPLE_NAME):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"the bundled {EXAMPLE_NAME} is missing from this klx install; reinstall klx", where=str(_ROOT))


def init(path: str | Path, *, force: bool = False) -> Path:
    """Write the example config to `path` (a file, or a folder that gets config.yaml); never overwrite unless `force`.

    A path ending in a slash names a folder, created when missing (Path() drops the slash, so `path` is the text given).
    """
    target = Path(path)
    if str(path).endswith(("/", os.sep)):
        if target.exists() and not target.is_dir():
            raise ConfigError(f"{target} is a file, not a folder", hint="pass the folder to write config.yaml into, or a file name")
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create folder {target}: {err.strerror}") from err
    if target.is_dir():
        target = target / "config.yaml"
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; not overwritten", hint="pass another path, or --force to overwrite it")
    if not target.parent.is_dir():
        raise ConfigError(f"folder {target.parent} does not exist", where=str(target))
    text = example_config_path().read_text()
    try:
        with open(target, "w") as out:
            out.write(text)
    except OSError as err:  # a folder the user may not write in (/etc/klx owned by root): one line, not a traceback
        hint = f"run it as a user who may write in {target.parent}, or write it elsewhere and copy it there" if isinstance(err, PermissionError) else None
        raise ConfigError(f"cannot write {target}: {err.strerror}", hint=hint) from err
    return target
