"""Crash trials: ``kill -9`` a run while it writes its plans and draft orders,
then check that nothing is half-written and that a rerun leaves exactly the
drafts of a clean run (docs/reliability.md, "Crash consistency").

One trial:

1. the store holds, for the planning date, either nothing or the drafts of an
   earlier, different run of the same date (drawn from the seed);
2. a child process (:func:`tests.reliability.workload.run_worker`) writes a
   run: its plans (one transaction), its drafts (one transaction);
3. at a point drawn from the seed — a moment inside the plans write, inside
   the drafts write, or anywhere in the run — it gets SIGKILL. On
   PostgreSQL the driver first reads the child's session from
   ``pg_stat_activity``, so each trial records whether a transaction was open
   when the process died;
4. **after the kill**: every draft's lines are the lines its header counts
   and sums; no line lacks its header; the drafts of the date are exactly
   those before the run or exactly those of a complete run (never a mix);
   a run's plans are all there or none;
5. **after a rerun** (in the driver): the drafts are exactly those of a clean
   run, complete.

Any broken rule is a *violation*; :func:`run_trials` returns them with every
trial's kill point.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from replenish.store import Store
from tests.reliability.workload import (
    DraftState,
    Workload,
    build_workload,
    clear_date,
    draft_state,
    integrity_violations,
    plan_counts,
    process_context,
    run_worker,
    store_engine,
    with_application_name,
    write_run,
)

PHASES = ("plans", "publish", "publish", "anywhere")
#: A phase only the deliberately broken writer (``per_draft``) has: the kill
#: right after its first draft's own transaction committed, whatever the
#: machine's speed (kills aimed at a fraction of the calibrated publish time
#: can all miss the window when the load changes between calibration and trial).
FIRST_DRAFT = "first draft"
_MARKERS = ("ready", "plans-begin", "plans-end", "publish-begin", "publish-end", "done")


@dataclass
class Trial:
    number: int
    start: str  # "empty" or "old drafts"
    phase: str  # where the kill was aimed: plans, publish, anywhere
    offset: float  # seconds after the phase began
    reached: str = ""  # the last marker the child sent before it died
    session: str = "n/a"  # PostgreSQL: the child's session state at the kill
    after_kill: str = ""  # "before", "complete" (the state the drafts were left in)
    violations: list[str] = field(default_factory=list)


@dataclass
class Report:
    backend: str
    trials: list[Trial]
    timings: dict[str, float]
    seconds: float

    @property
    def violations(self) -> list[str]:
        return [f"trial {t.number}: {v}" for t in self.trials for v in t.violations]

    def summary(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "trials": len(self.trials),
            "violations": len(self.violations),
            "killed_inside_a_transaction": sum(
                t.session in ("active", "idle in transaction") for t in self.trials
            ),
            "kill_points": dict(Counter(t.reached or "(none)" for t in self.trials)),
            "left_after_kill": dict(Counter(t.after_kill for t in self.trials)),
            "phase_seconds": {k: round(v, 3) for k, v in self.timings.items()},
            "seconds": round(self.seconds, 1),
        }


class CrashHarness:
    """Trials on the store at ``store_url`` (migrated here once)."""

    def __init__(
        self,
        store_url: str,
        workload: Workload | None = None,
        seed: int = 0,
        *,
        per_draft: bool = False,
    ) -> None:
        Store(store_url).dispose()  # create / upgrade the schema once
        self.url = store_url
        self.backend = make_url(store_url).get_backend_name()
        self.workload = workload or build_workload()
        self.rng = random.Random(seed)
        self.per_draft = per_draft
        self.engine: Engine = store_engine(store_url)
        self.ctx = process_context()
        self.timings: dict[str, float] = {}
        self.clean: DraftState = ((), ())
        self.old: DraftState = ((), ())

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- set-up

    def _reset(self, start: str) -> DraftState:
        clear_date(self.engine, self.workload.as_of)
        if start == "old drafts":
            write_run(self.url, self.workload, old=True)
        return draft_state(self.engine, self.workload.as_of)

    def calibrate(self) -> dict[str, float]:
        """One run in a child without a kill: how long each phase takes, and
        the drafts a clean run leaves (from either start)."""
        self.old = self._reset("old drafts")
        stamps = self._child_run(kill_at=None)[1]
        self.clean = draft_state(self.engine, self.workload.as_of)
        assert self.clean[0], "the workload orders nothing: no drafts to crash on"
        assert self.old != self.clean
        problems = integrity_violations(self.engine)
        assert not problems, problems
        self._reset("empty")
        write_run(self.url, self.workload)
        assert draft_state(self.engine, self.workload.as_of) == self.clean
        self.timings = {
            "plans": stamps["plans-end"] - stamps["plans-begin"],
            "publish": stamps["publish-end"] - stamps["publish-begin"],
            "anywhere": stamps["done"] - stamps["ready"],
        }
        return self.timings

    # ----------------------------------------------------------------- trials

    def _child_run(
        self, kill_at: tuple[str, float] | None, trial: Trial | None = None
    ) -> tuple[str, dict[str, float]]:
        """Run the workload in a child; with ``kill_at`` (marker, delay) SIGKILL
        it ``delay`` seconds after it sent that marker. Returns the last
        marker received and when each marker arrived."""
        name = f"replenish-crash-{os.getpid()}-{trial.number if trial else 0}"
        url = with_application_name(self.url, name)
        receiver, sender = self.ctx.Pipe(duplex=False)
        child = self.ctx.Process(
            target=run_worker, args=(sender, url, self.workload, self.per_draft), daemon=True
        )
        child.start()
        sender.close()
        stamps: dict[str, float] = {}
        last = ""

        def read(timeout: float) -> bool:
            """Read one marker within ``timeout``; False when none came or the child ended."""
            nonlocal last
            if not receiver.poll(timeout):
                return False
            try:
                last = receiver.recv()
            except EOFError:
                return False
            stamps[last] = time.monotonic()
            return True

        try:
            target = kill_at[0] if kill_at is not None else "done"
            while last not in (target, "done"):
                if not read(60):
                    if child.is_alive():
                        raise RuntimeError(f"crash worker silent for 60 s after {last!r}")
                    break
            if kill_at is not None and last == target:
                deadline = stamps[target] + kill_at[1]
                while last != "done" and (left := deadline - time.monotonic()) > 0:
                    if not read(left) and not child.is_alive():
                        break
            if kill_at is not None and trial is not None:
                trial.session = self._session_state(name)
                if child.is_alive() and child.pid is not None:
                    with contextlib.suppress(ProcessLookupError):  # it just ended
                        os.kill(child.pid, signal.SIGKILL)
                # markers sent before the kill but not yet read
                while receiver.poll(0):
                    try:
                        last = receiver.recv()
                    except EOFError:
                        break
            child.join(30)
            if kill_at is None and child.exitcode != 0:
                raise RuntimeError(f"crash worker failed without a kill (exit {child.exitcode})")
        finally:
            receiver.close()
            if child.is_alive():
                child.kill()
                child.join(5)
        self._wait_session_gone(name)
        return last, stamps

    def _session_state(self, name: str) -> str:
        if self.backend != "postgresql":
            return "n/a"
        with self.engine.connect() as c:
            state = c.execute(
                text("SELECT state FROM pg_stat_activity WHERE application_name = :n"),
                {"n": name},
            ).scalar()
        return str(state) if state is not None else "no session"

    def _wait_session_gone(self, name: str) -> None:
        """PostgreSQL notices the dead client and rolls its transaction back;
        wait for that so the checks see the server's settled state."""
        if self.backend != "postgresql":
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._session_state(name) == "no session":
                return
            time.sleep(0.02)
        raise RuntimeError(f"the session of a killed worker ({name}) did not end")

    def trial(
        self,
        number: int,
        *,
        start: str | None = None,
        phase: str | None = None,
        fraction: float | None = None,
    ) -> Trial:
        """One trial; ``start``, ``phase`` and ``fraction`` (of the phase's
        calibrated duration) are drawn from the seed unless given."""
        start = start or self.rng.choice(["empty", "old drafts"])
        phase = phase or self.rng.choice(PHASES)
        if phase == FIRST_DRAFT:  # the broken writer's first commit: no timing involved
            offset, begin = 0.0, "draft-1"
        else:
            fraction = self.rng.uniform(0.0, 1.1) if fraction is None else fraction
            offset = fraction * self.timings[phase]
            begin = "ready" if phase == "anywhere" else f"{phase}-begin"
        t = Trial(number, start, phase, offset)
        before = self._reset(start)
        t.reached, _ = self._child_run((begin, offset), t)

        as_of = self.workload.as_of
        t.violations += integrity_violations(self.engine)
        after = draft_state(self.engine, as_of)
        if after == self.clean:
            t.after_kill = "complete"
        elif after == before:
            t.after_kill = "before"
        else:
            t.after_kill = "mixed"
            t.violations.append(
                "after the kill the drafts are neither those before the run nor a complete "
                "run's (a partly written set)"
            )
        full = len(self.workload.plans)
        t.violations += [
            f"run {run}: {n} of {full} plan rows stored (a partial plan set)"
            for run, n in plan_counts(self.engine).items()
            if n != full
        ]

        write_run(self.url, self.workload)  # the rerun
        t.violations += [f"after the rerun: {v}" for v in integrity_violations(self.engine)]
        if draft_state(self.engine, as_of) != self.clean:
            t.violations.append("after the rerun the drafts differ from a clean run's")
        return t


def run_trials(
    store_url: str,
    trials: int | Sequence[dict[str, Any]],
    *,
    seed: int = 0,
    workload: Workload | None = None,
    per_draft: bool = False,
) -> Report:
    """Crash trials on the store at ``store_url`` (see the module docstring):
    ``trials`` drawn from ``seed``, or one per dict of :meth:`CrashHarness.trial`
    arguments (``start``, ``phase``, ``fraction``; missing ones drawn).
    ``per_draft``: crash the deliberately broken writer instead."""
    started = time.perf_counter()
    harness = CrashHarness(store_url, workload, seed, per_draft=per_draft)
    plan = [{}] * trials if isinstance(trials, int) else list(trials)
    try:
        timings = harness.calibrate()
        results = [harness.trial(n, **kwargs) for n, kwargs in enumerate(plan, start=1)]
    finally:
        harness.close()
    return Report(harness.backend, results, timings, time.perf_counter() - started)
