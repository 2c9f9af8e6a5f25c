"""Prefect tasks: one step each, each a thin wrapper over the library.

Only the network-facing steps retry, and only on transient faults
(``retry_condition_fn``). No task caches its inputs: they are large frames
and a rerun must recompute from the sources.
"""
