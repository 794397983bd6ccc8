"""The process's allocator: blocks of a few MiB go back to the operating system when freed."""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# glibc's M_MMAP_THRESHOLD (malloc.h): blocks at least this large get a mapping of their own, unmapped on free.
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 256 * 1024


def return_large_blocks() -> bool:
    """Have glibc map every block of LARGE_BLOCK bytes or more apart, and unmap it on free, and pyarrow allocate
    through it; False elsewhere.

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
        if not libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK):
            return False
    except (OSError, AttributeError):
        return False
    _arrow_uses_malloc()
    return True


def _arrow_uses_malloc() -> None:
    """Have pyarrow allocate its buffers with malloc, so that they too are unmapped when freed.

    pyarrow's default pool (mimalloc) keeps pages of freed buffers for reuse: the Arrow batches of a wide
    stream (profiles) left 15-25 MB resident that nothing used (bench/README.md, Session 5). pyarrow reads
    ARROW_DEFAULT_MEMORY_POOL when it is imported; a user's own choice of pool is kept.
    """
    if "pyarrow" in sys.modules:
        if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
            pyarrow = sys.modules["pyarrow"]
            pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    else:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
