"""One sync at a time per config and table prefix: an fcntl lock on a file beside the config."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TextIO

from .errors import ConfigError, LockedError

__all__ = ["LockedError", "RunLock"]


class RunLock:
    """An exclusive, non-blocking lock; the holder's pid, host and start time are written into the file.

    The kernel releases an fcntl lock when its holder dies, so a crashed run never leaves a stale lock;
    the file itself stays (deleting it would let two processes lock two different files).
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._file = None

    @classmethod
    def for_config(cls, config_path: Path, table_prefix: str) -> "RunLock":
        """The lock of one config file and table prefix: `.<config name>.<prefix>klx.lock` beside the config."""
        name = f".{config_path.name}.{table_prefix}klx.lock"
        what = f"{config_path} (table prefix {table_prefix!r})" if table_prefix else str(config_path)
        return cls(config_path.parent / name, what)

    def check(self) -> None:
        """Raise the ConfigError acquire() would if the lock file cannot be opened (klx check); takes no lock."""
        self._open().close()

    def _open(self) -> TextIO:
        # Not LockedError (exit 5, "another sync is running", skipped by a schedule): a folder klx cannot
        # write in is a setup mistake that waiting never fixes, like a bad config (exit 2).
        try:
            return open(self.path, "a+")
        except OSError as err:
            raise ConfigError(
                f"cannot create or open the lock file {self.path.name} in {self.path.parent}: {err.strerror}",
                hint=f"klx keeps its lock beside the config: let the user klx runs as write in {self.path.parent} (and to {self.path.name} if it exists)",
            ) from err

    def acquire(self) -> None:
        """Take the lock or raise LockedError naming the process that holds it."""
        handle = self._open()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise LockedError(
                f"{self.what} is already being synced by {holder}",
                hint=f"wait for that sync to finish or stop it; the lock is {self.path} and is released when its process exits",
            ) from None
        except OSError as err:
            handle.close()
            raise ConfigError(
                f"cannot lock {self.path}: {err.strerror}", hint="keep the config on a local file system that supports fcntl locks"
            ) from err
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.close()
            self._file = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on {holder['host']} since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "another process (it has not written its pid yet)"
