"""The process-wide allocator settings of replenish/memory.py."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import pyarrow as pa; before = pa.default_memory_pool().backend_name; "
    "import replenish.memory as m, replenish; "
    "print(before, pa.default_memory_pool().backend_name, m.lean_allocators())"
)


def _probe(**env: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_lean_allocators_make_arrow_allocate_through_malloc() -> None:
    before, after, applied = _probe(REPLENISH_ALLOCATOR="lean")
    assert before != "system" and after == "system"
    assert applied == ("True" if sys.platform == "linux" else applied)


def test_the_allocators_are_left_as_they_are_by_default() -> None:
    for value in ("", "default"):
        before, after, applied = _probe(REPLENISH_ALLOCATOR=value)
        assert after == before != "system" and applied == "False"
