"""The C allocator's arenas, limited once at start-up (docs/architecture.md, "Memory").

glibc's ``malloc`` gives a thread that allocates while the others' arenas are busy an arena of
its own, up to 8 per CPU, and keeps what is freed in each arena for that arena alone. A ``sync``
runs about twenty threads (pull and its read-ahead, validate, the push workers, write-back, the
heartbeats); measured on the 10,000-order backlog, the Python heap stayed flat while the
arenas' free space grew with the run (9 MB to 29 MB) and took the resident memory past 110 MB.
With at most :data:`ARENAS` arenas, freed memory is re-used by the next thread and the run stays
flat (94-101 MB at 10,000 orders, 100-103 MB at 50,000). The threads mostly wait on sockets
or hold the GIL, so few allocate at the same moment: two arenas are seldom contended.

An operator's own ``MALLOC_ARENA_MAX`` in the environment wins (glibc reads it itself); other C
libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os

ARENAS = 2  # at most this many malloc arenas in one process, whatever the CPU count
M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Limit glibc's malloc to ``arenas`` arenas; True when the limit was set here.

    Call it first thing, before any thread starts (an arena already given out stays).
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    if not _glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def _glibc() -> bool:
    """True when this process runs on GNU libc."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return False
    return bool(version) and str(version).startswith("glibc")
