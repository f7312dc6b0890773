"""Giving freed heap memory back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


def release_free_memory() -> None:
    """Return free heap pages to the OS (glibc's ``malloc_trim``; a no-op elsewhere).

    Building an index from PostgreSQL allocates and frees millions of small row objects;
    glibc keeps those pages, which left a serving process 1.1 GB above what it holds at
    100k accounts (1.74 GB resident, 0.65 GB after a trim)."""
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)
