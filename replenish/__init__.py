"""replenish: just-in-time replenishment for e-commerce and B2B merchants.

The library package imports no Prefect: it is testable in plain Python.
"""

__version__ = "0.1.0"

from replenish.memory import lean_allocators as _lean_allocators

_lean_allocators()
