"""Errors a user can act on; only cli.py catches them."""

from __future__ import annotations


class KlxError(Exception):
    """An error with a place (file:line or stream) and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(KlxError):
    """The user's config.yaml is wrong."""

    exit_code = 2


class SpecError(KlxError):
    """A stream spec (specs/*.yaml) is wrong."""

    exit_code = 2


class ApiError(KlxError):
    """The HTTP API answered with an error or an unreadable body."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        stream: str | None = None,
        url: str | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, where=where, hint=hint)
        self.status = status
        self.stream = stream
        self.url = url


class WarehouseError(KlxError):
    """The destination refused a statement or could not be reached."""

    exit_code = 4
