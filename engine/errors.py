"""Errors a user can act on (only cli.py catches them), and the one place any message is made safe to print."""

from __future__ import annotations

import json
import logging
import re
import traceback
from datetime import datetime, timezone
from urllib.parse import quote

MESSAGE_CHARS = 600  # any KlxError message is one line of at most this many characters
# A hint is klx's own text, and often a statement to copy (Snowflake's widening is four, with every name quoted in
# full): cut at the message's length, it would not run.
HINT_CHARS = 2000
JSON_TEXT_CHARS = 2000  # each text value of a --log-format json line, unless its caller asks for more
_SECRETS: set[str] = set()
# Terminal escape sequences (CSI, OSC) whole, then any other control or bidi/invisible formatting character.
_UNSAFE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)


def register_secret(value: str) -> None:
    """Mask `value` (and its URL-encoded form) in every message from now on."""
    if len(value) >= 4:  # a shorter "secret" would mask ordinary text
        _SECRETS.update({value, quote(value, safe="")})


def mask(text: str) -> str:
    """`text` with every registered secret replaced by ***."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def scrub(text: str) -> str:
    """`text` with secrets masked and every control character or escape sequence (newlines too) replaced by a space."""
    return _UNSAFE.sub(" ", mask(str(text)))


def clean(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` on one line for a terminal or log: scrubbed, spaces collapsed, at most `limit` characters."""
    text = " ".join(scrub(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CleanFormatter(logging.Formatter):
    """Wraps a log formatter: every record becomes one clean line (a URL or detail from the API can hold anything)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text with the message cleaned; traceback lines (logged only with --debug) scrubbed."""
        copy = logging.makeLogRecord(record.__dict__)
        copy.msg, copy.args, copy.exc_info, copy.exc_text = clean(record.getMessage(), 2000), None, None, None
        text = self.inner.format(copy)
        if record.exc_info:
            text += "\n" + "\n".join(scrub(line) for line in self.inner.formatException(record.exc_info).splitlines())
        return text


class JsonLogFormatter(logging.Formatter):
    """--log-format json: each log record one JSON object on its line (ts, event "log", level, logger, message),
    cleaned like every other message; a traceback (logged only with --debug) as a list of scrubbed lines."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        line = {
            "ts": log_time(datetime.fromtimestamp(record.created, timezone.utc)),
            "event": "log",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean(record.getMessage(), 2000),
        }
        if record.exc_info:
            line["traceback"] = [scrub(text) for text in self.formatException(record.exc_info).splitlines()]
        return json.dumps(line)


def bug_text(err: BaseException) -> str:
    """An unexpected error (a bug) on one clean line: its type and message, secrets masked."""
    return clean(f"{type(err).__name__}: {err}", 300)


def traceback_text() -> str:
    """The traceback of the exception being handled, secrets masked and each line scrubbed (--debug shows it)."""
    return "\n".join(scrub(line) for line in traceback.format_exc().splitlines())


def log_time(moment: datetime) -> str:
    """A log line's timestamp: UTC, to the second (2026-11-30T09:00:10Z)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_line(event: str, /, *, text_chars: int = JSON_TEXT_CHARS, **fields: object) -> str:
    """One JSON object for --log-format json (ts, event, then `fields`), its text values cleaned to `text_chars` each
    (more only for text klx made itself and a cut would spoil: a SQL statement)."""
    now = log_time(datetime.now(timezone.utc))
    return json.dumps({"ts": now, "event": event, **{k: clean(v, text_chars) if isinstance(v, str) else v for k, v in fields.items()}})


def json_error(event: str, err: "KlxError", **fields: object) -> str:
    """json_line of an error: its message, and its place and hint when it has them."""
    place = {"where": err.where} if err.where else {}
    hint = {"hint": err.hint} if err.hint else {}
    return json_line(event, **fields, message=err.message, **place, **hint)


class KlxError(Exception):
    """An error with a place (file:line or stream) and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        message = clean(message)
        super().__init__(message)
        self.message = message
        self.where = clean(where) if where else where
        self.hint = clean(hint, HINT_CHARS) if hint else hint

    def __str__(self) -> str:
        # Cleaned again: code may have appended to .message after construction.
        text = f"{self.where}: {clean(self.message)}" if self.where else clean(self.message)
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
        self.url = clean(url) if url else url


class WarehouseError(KlxError):
    """The destination refused a statement or could not be reached."""

    exit_code = 4


class LockedError(KlxError):
    """Another process is syncing the same config and prefix, or loading the same warehouse schema and prefix."""

    exit_code = 5
