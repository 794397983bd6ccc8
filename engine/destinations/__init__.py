"""The destination registry: config.destination.type → a Destination class."""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Protocol

from engine.destinations.base import Destination
from engine.errors import ConfigError
from engine.yaml_source import did_you_mean


class DestinationConfig(Protocol):
    """What build_destination reads from the engine's destination config block."""

    type: str
    table_prefix: str
    options: Mapping[str, Any]
    where: str


class DestinationFactory(Protocol):
    """A destination class: validates its own options and connects."""

    @classmethod
    def from_config(cls, config: DestinationConfig, *, create: bool = True) -> Destination: ...


DESTINATIONS: dict[str, type[DestinationFactory]] = {}


def destination(name: str) -> Callable[[type], type]:
    """Register a destination class under config's `destination.type: name`."""

    def register(cls: type) -> type:
        DESTINATIONS[name] = cls
        return cls

    return register


def build_destination(config: DestinationConfig, *, create: bool = True) -> Destination:
    """The connected destination `config` names. With create=False (commands that only read: plan, runs, state
    show, discover) nothing is made that is missing: no schema, no DuckDB file; reads then find nothing."""
    if config.type not in DESTINATIONS:
        known = ", ".join(sorted(DESTINATIONS))
        raise ConfigError(f"destination.type: unknown {config.type!r}; known: {known}", where=config.where)
    return DESTINATIONS[config.type].from_config(config, create=create)


def import_driver(config: DestinationConfig, module: str, extra: str) -> ModuleType:
    """The driver `module` of destination `config.type`; a ConfigError naming the extra that installs it if absent.

    Drivers are optional extras: a plain `pip install klx` has DuckDB only.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = isinstance(err, ModuleNotFoundError) and err.name is not None and (module + ".").startswith(err.name + ".")
        why = "is not installed" if missing else f"cannot be imported ({err})"
        raise ConfigError(
            f"destination.type: {config.type!r} needs the {module} driver, which {why}",
            where=config.where,
            hint=_install_hint(extra),
        ) from err


def _install_hint(extra: str) -> str:
    """How to install klx's `extra` into the Python klx runs on: its own requirements, from klx's installed metadata.

    Not `pip install 'klx[postgres]'`: klx is installed from its repository, and that line would fetch whatever
    package is called klx on PyPI, into whichever environment `pip` belongs to (not a pipx venv's)."""
    import importlib.metadata  # only when a driver is missing

    try:
        listed = importlib.metadata.requires("klx") or []
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing it
        listed = []
    wanted = [req.strip() for req, _, marker in (r.partition(";") for r in listed) if marker.replace("'", '"').strip() == f'extra == "{extra}"']
    if not wanted:
        return f"install klx with its {extra} extra: pip install '.[{extra}]' in klx's folder"
    return f"{shlex.quote(sys.executable)} -m pip install {' '.join(shlex.quote(req) for req in wanted)} (klx's {extra} extra)"


def option_where(config: DestinationConfig, key: str) -> str:
    """file:line of one option, or of the destination block when the options don't carry lines."""
    at = getattr(config.options, "at", None)
    return at(key) if at is not None and key in config.options else config.where


def prefix_where(config: DestinationConfig) -> str:
    """file:line of destination.table_prefix, or of the destination block."""
    return getattr(config, "table_prefix_where", None) or config.where


def config_relative(config: DestinationConfig, path: str) -> str:
    """A file path option resolved against the config file's folder, so a cron job may run from anywhere."""
    base = getattr(config, "base_dir", None)
    if base is None or Path(path).is_absolute():
        return path
    return str(Path(base) / path)


# destination.batch_scale: a batch holds this many times api.batch_rows rows and run.BATCH_BYTES of responses.
MAX_BATCH_SCALE = 64


def batch_scale_option(config: DestinationConfig, default: int) -> int:
    """destination.batch_scale (a whole number from 1 to MAX_BATCH_SCALE), or the destination's own default."""
    value = config.options.get("batch_scale", default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_BATCH_SCALE:
        raise ConfigError(
            f"destination.batch_scale: {value!r} is not a whole number from 1 to {MAX_BATCH_SCALE}", where=option_where(config, "batch_scale")
        )
    return value


def schema_option(config: DestinationConfig, default: str) -> str:
    """destination.schema, or the destination's default; a blank one names no schema, so it is refused here,
    not by the warehouse's CREATE SCHEMA with neither the file nor the key."""
    value = config.options.get("schema", default)
    if isinstance(value, str) and not value.strip():
        raise ConfigError(
            f"destination.schema: {value!r} names no schema; give one, or leave the key out for {default}",
            where=option_where(config, "schema"),
        )
    return value


def check_options(config: DestinationConfig, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """Raise ConfigError for an unknown or missing option of destination `config.type`."""
    for key in config.options:
        if key not in allowed:
            near = did_you_mean(key, (*allowed, "type", "table_prefix"))
            known = near if near.startswith("did you mean") else f"known: {', '.join(allowed)}"
            raise ConfigError(f"destination.{key}: unknown option for {config.type!r}; {known}", where=option_where(config, key))
    for key in required:
        if config.options.get(key) in (None, ""):
            raise ConfigError(f"destination.{key}: required for {config.type!r}", where=config.where)


# Each module registers itself; its driver is imported only when a destination of its type is built.
from engine.destinations import duckdb as _duckdb  # noqa: E402,F401
from engine.destinations import postgres as _postgres  # noqa: E402,F401
from engine.destinations import snowflake as _snowflake  # noqa: E402,F401
