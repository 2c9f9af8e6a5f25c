"""Batches of values for statements and requests with a size limit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def chunks(values: Iterable[T], size: int) -> list[list[T]]:
    """``values`` in lists of at most ``size`` (sorted input stays sorted)."""
    items = list(values)
    return [items[i : i + size] for i in range(0, len(items), size)]
