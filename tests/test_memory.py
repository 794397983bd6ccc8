"""engine/memory.py: blocks of a few MiB are mapped apart and go back to the OS when freed."""

from __future__ import annotations

import ctypes
import platform

import pytest

from engine.memory import LARGE_BLOCK, return_large_blocks

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mapped_blocks() -> int:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2().hblks


@glibc
def test_a_block_of_a_few_mib_is_mapped_apart_even_after_a_larger_one_was_freed() -> None:
    assert return_large_blocks()
    # Left to itself, glibc would raise its threshold to 8 MiB here and serve the next block from a heap arena.
    big = bytearray(8 << 20)
    del big
    before = _mapped_blocks()
    block = bytearray(2 * LARGE_BLOCK)
    assert _mapped_blocks() == before + 1
    del block
    assert _mapped_blocks() == before


@glibc
def test_a_small_block_stays_in_the_heap() -> None:
    assert return_large_blocks()
    before = _mapped_blocks()
    block = bytearray(LARGE_BLOCK // 4)
    assert _mapped_blocks() == before
    del block
