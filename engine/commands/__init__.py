"""The logic of klx's operating commands (run, schedule, check, discover, plan, state, runs); cli.py only parses."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config


# What an unset ${VAR} reads as. A secret's value (an API key's, a password's) is masked in every message from then
# on: "unset", the placeholder before, turned "or unset it" in any later error of the process into "or *** it".
PLACEHOLDER = "klx-unset-variable"


class _EnvWithPlaceholders(dict):
    """The environment, with a placeholder for every unset ${VAR}: for commands that send nothing."""

    def __init__(self) -> None:
        super().__init__(os.environ)

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return self.get(key) or PLACEHOLDER


def config_without_secrets(path: Path) -> Config:
    """The config, validated, without requiring the API key's variable (runs, state, plan, schedule --next)."""
    return Config.from_yaml(path, env=_EnvWithPlaceholders())
