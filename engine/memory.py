"""The process's allocator: blocks of a few MiB go back to the operating system when freed."""

from __future__ import annotations

import ctypes
import platform

# glibc's M_MMAP_THRESHOLD (malloc.h): blocks at least this large get a mapping of their own, unmapped on free.
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 256 * 1024


def return_large_blocks() -> bool:
    """Have glibc map every block of LARGE_BLOCK bytes or more apart, and unmap it on free; False elsewhere.

    glibc starts at 128 KiB but raises its threshold each time a mapped block is freed (up to 32 MiB), after
    which response bodies and batch buffers of a few MiB come from the heap arena of the thread that asked;
    freed, they stay there as holes between small objects. With streams, fetch threads and the warehouse
    driver each on an arena of their own, a sync held about 50 MB of such free space (bench/README.md).
    Setting the threshold also stops it moving.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK))
    except (OSError, AttributeError):
        return False
