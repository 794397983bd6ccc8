"""engine/memory.py: blocks of a few MiB are mapped apart and go back to the OS when freed."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from engine.memory import LARGE_BLOCK, return_large_blocks

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mapped_blocks() -> int:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2().hblks


# In a fresh interpreter: glibc maps a block apart only when no free chunk of its heap fits it, and a test
# process that ran other tests first (an xdist worker) has such chunks.
_FRESH = """
import ctypes, sys
sys.path.insert(0, {root!r})
from engine.memory import LARGE_BLOCK, return_large_blocks
from tests.test_memory import _mapped_blocks
assert return_large_blocks()
big = bytearray(8 << 20)  # left to itself, glibc would raise its threshold to 8 MiB when this is freed
del big
before = _mapped_blocks()
block = bytearray(2 * LARGE_BLOCK)
during = _mapped_blocks()
del block
print(before, during, _mapped_blocks())
"""


@glibc
def test_a_block_of_a_few_mib_is_mapped_apart_even_after_a_larger_one_was_freed() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", _FRESH.format(root=root)], capture_output=True, text=True, check=True, cwd=root)
    before, during, after = map(int, out.stdout.split())
    assert (during, after) == (before + 1, before)


@glibc
def test_a_small_block_stays_in_the_heap() -> None:
    assert return_large_blocks()
    before = _mapped_blocks()
    block = bytearray(LARGE_BLOCK // 4)
    assert _mapped_blocks() == before
    del block


_ARROW_POOL = """
import os, sys
sys.path.insert(0, {root!r})
{before}
from engine.memory import return_large_blocks
assert return_large_blocks()
import pyarrow
print(pyarrow.default_memory_pool().backend_name)
"""


@glibc
@pytest.mark.parametrize("before", ["", "import pyarrow"], ids=["pyarrow imported after", "pyarrow imported before"])
def test_arrow_buffers_come_from_malloc_so_freed_ones_are_unmapped(before: str) -> None:
    root = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", _ARROW_POOL.format(root=root, before=before)], capture_output=True, text=True,
                         check=True, cwd=root, env=env)
    assert out.stdout.strip() == "system"


@glibc
@pytest.mark.parametrize("before", ["", "import pyarrow"], ids=["pyarrow imported after", "pyarrow imported before"])
def test_a_users_arrow_pool_is_kept(before: str) -> None:
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}
    out = subprocess.run([sys.executable, "-c", _ARROW_POOL.format(root=root, before=before)], capture_output=True, text=True,
                         check=True, cwd=root, env=env)
    assert out.stdout.strip() == "jemalloc"
