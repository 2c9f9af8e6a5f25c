"""Process-wide allocator settings that trade speed for a lower peak of memory.

A nightly run at 100,000 series reads and drops arrays of hundreds of MB many
times over (Arrow batches, their pandas columns, the gate's chunks). Freed,
they stay in the process: glibc's ``malloc`` raises its mmap threshold after
the first large free and serves later large arrays from its heap, which it
rarely gives back; Arrow's own allocator (mimalloc) keeps its pages for Arrow,
which numpy does not reuse. With ``REPLENISH_ALLOCATOR=lean``,
:func:`lean_allocators` makes arrays of 256 KiB and more separate mappings,
returned to the system when freed, and has Arrow allocate through the same
``malloc``. Measured on the cold run of the synthetic shop at 100,000 series
(benchmarks/full_run.py, docs/operations.md section 3): peak 5.36 -> 4.71 GB
(after the extract 3.00 -> 2.42 GB), but the run is slower (validation
37 -> 56 s: every large array is mapped and unmapped again), so it is off by
default: set it where memory is short, not time.

It runs once, when :mod:`replenish` is imported; any other value (or none)
leaves both allocators as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from typing import Final

log = logging.getLogger(__name__)

#: glibc's mallopt parameter for the mmap threshold (malloc.h: M_MMAP_THRESHOLD).
_M_MMAP_THRESHOLD: Final = -3
#: Arrays from this size on are their own mappings (returned to the system on free).
MMAP_THRESHOLD: Final = 256 * 1024
_applied: bool | None = None


def lean_allocators() -> bool:
    """Apply the settings above (once per process); True when glibc took them."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("REPLENISH_ALLOCATOR", "").strip().lower() != "lean":
        return False
    applied = False
    name = ctypes.util.find_library("c")
    if name is not None:
        try:
            libc = ctypes.CDLL(name)
            applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        except (OSError, AttributeError):  # not glibc (musl, macOS): left alone
            applied = False
    try:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    except Exception:  # pragma: no cover - pyarrow is a dependency
        log.debug("Arrow's memory pool left as it is", exc_info=True)
    return applied
