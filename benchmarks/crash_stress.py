"""Stress: ``kill -9`` replenishment runs at random points, count the violations.

The promise (docs/reliability.md, "Crash consistency"): whatever point a run
dies at, no purchase order is half-written, and a rerun leaves exactly one
complete set of drafts, equal to a clean run's. This script tries to break it
``--trials`` times and prints the number of violations, which must be 0 (the
exit status is 1 otherwise).

Two modes:

* ``--mode library`` (default): each trial forks a child process that writes
  one run through the library exactly as the nightly flow does
  (``Store.save_plans``, then ``Store.publish_drafts``: the demo shop's plans
  and drafts), kills it with SIGKILL at a seeded point (inside the plans
  write, inside the drafts write, or anywhere in the run), checks the store,
  reruns, checks again (tests/reliability/crash.py describes a trial). About
  0.5 s a trial.
* ``--mode cli``: each trial starts the real command
  ``replenish plan --erp ... --db ... --as-of ...`` on the demo ERP (SQLite) in
  its own process group and kills the whole group (the command and the
  temporary Prefect server it starts) with SIGKILL at a uniformly random
  moment of its run, then reruns the command. About 30 s a trial.

Stores (``--backend``): ``postgresql`` (a throw-away database on
``REPLENISH_TEST_POSTGRES_URL``, default the local server), ``sqlite`` (a
temporary file), or ``both``.

Usage::

    python benchmarks/crash_stress.py                         # 100 trials per store
    python benchmarks/crash_stress.py --trials 300 --backend postgresql --seed 5
    python benchmarks/crash_stress.py --mode cli --trials 5 --backend sqlite
    python benchmarks/crash_stress.py --json                  # one JSON object per store
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the trial machinery lives with the tests
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

POSTGRES_URL = os.environ.get(
    "REPLENISH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def store_url(backend: str, folder: Path) -> Iterator[str]:
    """A fresh, empty store of ``backend``; a PostgreSQL database is dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{(folder / f'store-{uuid.uuid4().hex[:8]}.db').as_posix()}"
        return
    name = f"replenish_crash_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


# ====================================================================== library


def library_mode(url: str, trials: int, seed: int, skus: int) -> dict[str, Any]:
    from tests.reliability.crash import run_trials
    from tests.reliability.workload import build_workload

    report = run_trials(url, trials, seed=seed, workload=build_workload(n_skus=skus))
    summary = report.summary()
    summary["mode"] = "library"
    summary["violation_details"] = report.violations
    return summary


# ========================================================================== CLI


def _cli(erp: str, store: str, as_of: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "replenish"), "plan"]
    command += ["--erp", erp, "--db", store, "--as-of", as_of]
    return subprocess.Popen(
        command,
        env=env,
        cwd=env["REPLENISH_HOME"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill takes the whole run
    )


def _finish(process: subprocess.Popen[bytes]) -> None:
    _, err = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"replenish plan failed ({process.returncode}): {err.decode()[-2000:]}")


def _group_gone(pgid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _perturb(url: str, as_of: Any) -> None:
    """Turn the stored drafts of ``as_of`` into those of an earlier, different
    run of the date (every other line doubled), so a rerun must update them."""
    from replenish.store import Store

    store = Store(url)
    try:
        orders = store.orders(as_of=as_of)
        lines = orders.copy()
        lines.loc[lines.index[::2], "qty"] *= 2
        lines["line_value"] = (lines["qty"] * lines["unit_price"]).round(2)
        headers = lines.groupby(["po_key", "supplier_id", "location_id"], as_index=False).agg(
            total_value=("line_value", "sum"), currency=("currency", "first")
        )
        store.publish_drafts(as_of, "earlier-run", headers, lines)
    finally:
        store.dispose()


def cli_mode(url: str, trials: int, seed: int, skus: int, folder: Path) -> dict[str, Any]:
    from replenish.demo import generate_demo
    from replenish.sources.generic import write_snapshot
    from tests.reliability.workload import (
        AS_OF,
        clear_date,
        draft_state,
        integrity_violations,
        plan_counts,
        store_engine,
    )

    started = time.perf_counter()
    rng = random.Random(seed)
    erp = f"sqlite:///{(folder / 'erp.db').as_posix()}"
    write_snapshot(generate_demo(AS_OF, seed=seed, n_skus=skus, days=400), erp)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REPLENISH_", "PREFECT_API_URL", "PREFECT_HOME"))
    }
    env.update(
        REPLENISH_HOME=str(folder),
        PREFECT_HOME=str(folder / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        GX_ANALYTICS_ENABLED="false",
    )
    day = AS_OF.isoformat()
    engine = store_engine(url)

    t0 = time.monotonic()
    _finish(_cli(erp, url, day, env))
    clean_seconds = time.monotonic() - t0
    clean = draft_state(engine, AS_OF)
    full = next(iter(plan_counts(engine).values()))
    if not clean[0] or integrity_violations(engine):
        raise RuntimeError("the clean run left no drafts or broken drafts")

    results: list[dict[str, Any]] = []
    violations: list[str] = []
    for number in range(1, trials + 1):
        start = rng.choice(["empty", "old drafts"])
        clear_date(engine, AS_OF)
        if start == "old drafts":
            _finish(_cli(erp, url, day, env))
            _perturb(url, AS_OF)
        before = draft_state(engine, AS_OF)
        delay = rng.uniform(0.0, clean_seconds * 1.1)
        process = _cli(erp, url, day, env)
        time.sleep(delay)
        finished = process.poll() is not None
        if not finished:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        mine: list[str] = []
        if not _group_gone(process.pid):
            mine.append("processes of the killed run survived the kill")
        mine += integrity_violations(engine)
        after = draft_state(engine, AS_OF)
        left = "complete" if after == clean else "before" if after == before else "mixed"
        if left == "mixed":
            mine.append("after the kill the drafts are neither the previous nor a complete set")
        mine += [
            f"run {run}: {n} of {full} plan rows (a partial plan set)"
            for run, n in plan_counts(engine).items()
            if n != full
        ]
        _finish(_cli(erp, url, day, env))  # the rerun
        mine += [f"after the rerun: {v}" for v in integrity_violations(engine)]
        if draft_state(engine, AS_OF) != clean:
            mine.append("after the rerun the drafts differ from a clean run's")
        results.append(
            {"trial": number, "start": start, "killed_after": round(delay, 2), "left": left}
        )
        violations += [f"trial {number}: {v}" for v in mine]
        print(f"  trial {number}: killed after {delay:.1f} s, drafts left {left}", flush=True)
    engine.dispose()
    return {
        "mode": "cli",
        "backend": make_url(url).get_backend_name(),
        "trials": trials,
        "violations": len(violations),
        "left_after_kill": dict(Counter(r["left"] for r in results)),
        "clean_run_seconds": round(clean_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "violation_details": violations,
    }


# ========================================================================= main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--mode", choices=["library", "cli"], default="library")
    parser.add_argument(
        "--backend", choices=["postgresql", "sqlite", "both"], default="both", help="store"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skus", type=int, default=120, help="SKUs of the demo shop")
    parser.add_argument("--json", action="store_true", help="print one JSON object per store")
    args = parser.parse_args(argv)
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]

    total = 0
    with tempfile.TemporaryDirectory(prefix="replenish-crash-") as tmp:
        for backend in backends:
            folder = Path(tmp) / backend
            folder.mkdir()
            with store_url(backend, folder) as url:
                if args.mode == "library":
                    summary = library_mode(url, args.trials, args.seed, args.skus)
                else:
                    summary = cli_mode(url, args.trials, args.seed, args.skus, folder)
            total += summary["violations"]
            if args.json:
                print(json.dumps(summary))
                continue
            print(f"{args.mode} mode, {backend} store: {summary['trials']} trials")
            for key, value in summary.items():
                if key not in ("mode", "backend", "trials", "violation_details"):
                    print(f"  {key}: {value}")
            for line in summary["violation_details"]:
                print(f"  VIOLATION {line}")
    if not args.json:
        print(f"violations: {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
