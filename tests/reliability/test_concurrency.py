"""Promise 3, concurrency: two runs for the same planning date started
together — two workers, or a manual rerun during the scheduled one — leave
one set of draft orders, by a database lock or constraint, not by luck.

* The race is *forced*: the test holds an exclusive lock on the drafts table
  while two real processes start publishing, waits until PostgreSQL shows
  both blocked on it, then lets them go at the same instant.
* Two real processes run the whole nightly flow for the same date against one
  PostgreSQL store.
* The deployment's concurrency limit (prefect.yaml) is the second line of
  defence: a scheduled run and a manual run of the deployment queue behind
  each other. ``replenish plan`` from a shell does not go through it, which is
  why the first line is in the database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, text

from replenish.demo import generate_demo
from replenish.sources.generic import write_snapshot
from replenish.store import Store
from tests.reliability.workload import (
    AS_OF,
    build_workload,
    draft_state,
    integrity_violations,
    process_context,
    publish_worker,
    store_engine,
    with_application_name,
    write_run,
)

REPO = Path(__file__).resolve().parents[2]


def _waiting_on_lock(engine: Engine, names: list[str]) -> int:
    with engine.connect() as c:
        return int(
            c.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = ANY(:names) AND wait_event_type = 'Lock'"
                ),
                {"names": names},
            ).scalar_one()
        )


def race(
    url: str, sets: list[tuple[pd.DataFrame, pd.DataFrame]], engine: Engine
) -> list[tuple[str, Any]]:
    """Publish each set of drafts from its own process, released together."""
    ctx = process_context()
    names = [f"replenish-race-{os.getpid()}-{i}" for i in range(len(sets))]
    children, pipes = [], []
    with engine.connect() as lock:
        tx = lock.begin()
        lock.execute(text("LOCK TABLE draft_purchase_orders IN ACCESS EXCLUSIVE MODE"))
        for name, (headers, lines) in zip(names, sets, strict=True):
            receiver, sender = ctx.Pipe(duplex=False)
            child = ctx.Process(
                target=publish_worker,
                args=(sender, with_application_name(url, name), AS_OF, headers, lines),
                daemon=True,
            )
            child.start()
            sender.close()
            children.append(child)
            pipes.append(receiver)
        try:
            for receiver in pipes:
                assert receiver.poll(60) and receiver.recv() == "ready"
            deadline = time.monotonic() + 60
            while _waiting_on_lock(engine, names) < len(names):
                assert time.monotonic() < deadline, "the publishers never reached the lock"
                time.sleep(0.02)
        finally:
            tx.commit()  # both go at once
    results = []
    for child, receiver in zip(children, pipes, strict=True):
        assert receiver.poll(60), "a publisher did not answer"
        results.append(receiver.recv())
        child.join(30)
        receiver.close()
    return results


@pytest.mark.postgres
@pytest.mark.parametrize(
    "case",
    [
        "same drafts, nothing stored yet",
        "different drafts, nothing stored yet",
        "different drafts over an earlier run's drafts",
        "disjoint lines over an earlier run's drafts",
    ],
)
def test_two_runs_publishing_one_date_at_the_same_instant_leave_one_set(
    postgres_url: str, case: str
) -> None:
    wl = build_workload()
    Store(postgres_url).dispose()  # schema
    engine = store_engine(postgres_url)
    mine, theirs = (wl.headers, wl.lines), (wl.headers, wl.lines)
    if case.startswith("different"):
        theirs = (wl.alt_headers, wl.alt_lines)
    if case.startswith("disjoint"):  # the same orders, no line in common
        mine, theirs = wl.half(0), wl.half(1)
    if case.endswith("an earlier run's drafts"):
        write_run(postgres_url, wl, old=True)

    results = race(postgres_url, [mine, theirs], engine)

    # both runs finish (the loser of the race retries and finds the winner's drafts)
    assert [status for status, _ in results] == ["ok", "ok"], results
    assert integrity_violations(engine) == []
    after = draft_state(engine, AS_OF)
    if case.startswith("same"):
        created = sum(counts["created"] for _, counts in results)
        assert created == len(wl.headers)  # each draft created once, by one run
    # the drafts are exactly the set of one of the runs (never a mix of the two):
    # publishing a set alone gives its exact state
    possible = []
    for headers, lines in (mine, theirs):
        write_run_set(postgres_url, headers, lines)
        possible.append(draft_state(engine, AS_OF))
    assert after in possible
    engine.dispose()


def write_run_set(url: str, headers: pd.DataFrame, lines: pd.DataFrame) -> None:
    store = Store(url, upgrade=False)
    try:
        store.publish_drafts(AS_OF, "reference-run", headers, lines)
    finally:
        store.dispose()


@pytest.mark.postgres
@pytest.mark.flow
@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_two_nightly_flows_started_together_leave_one_set_of_drafts(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two real processes, each the whole nightly flow for the same date, on
    one PostgreSQL store (what two workers, or a manual rerun during the
    scheduled run, do)."""
    from prefect.settings import PREFECT_API_URL

    erp = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    write_snapshot(generate_demo(AS_OF, seed=5, n_skus=30, days=200), erp)
    Store(postgres_url).dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLENISH_")}
    env.update(
        REPLENISH_ERP_URL=erp,
        REPLENISH_DB_URL=postgres_url,
        REPLENISH_HOME=str(tmp_path),
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="CRITICAL",
        PYTHONPATH=str(REPO),
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.nightly_child", AS_OF.isoformat()],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == "ready", (line, child.stderr.read() if child.stderr else "")
        for child in children:  # go
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=240) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    results = [_last_json(out, err) for out, err in outputs]

    engine = store_engine(postgres_url)
    assert integrity_violations(engine) == []
    store = Store(postgres_url)
    headers, lines = store.count_drafts(AS_OF)
    completed = [r["ok"] for r in results if "ok" in r]
    assert completed, results
    # each draft was created by exactly one of the runs; no line twice
    assert sum(s["drafts"]["created"] for s in completed) == headers > 0
    assert lines >= headers
    # a run that lost a race on the store fails clearly, it does not order twice
    for r in results:
        if "error" in r:
            assert "StoreError" in r["error"] or "SourceError" in r["error"], r
    store.dispose()
    engine.dispose()


def _last_json(out: str, err: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise AssertionError(f"the child printed no result: {out[-2000:]} {err[-3000:]}")


def test_the_nightly_deployment_runs_one_at_a_time() -> None:
    """The second line of defence: Prefect's concurrency limit on the
    deployment (a run due while one runs waits, or is cancelled)."""
    files = sorted(REPO.glob("prefect*.yaml"))
    assert files
    nightly = []
    for path in files:
        for deployment in yaml.safe_load(path.read_text())["deployments"]:
            if deployment["entrypoint"].endswith("flows/nightly.py:nightly_replenishment"):
                nightly.append((path.name, deployment))
    assert nightly
    for name, deployment in nightly:
        limit = deployment.get("concurrency_limit")
        assert isinstance(limit, dict) and limit.get("limit") == 1, (name, deployment["name"])
        assert limit.get("collision_strategy") in ("ENQUEUE", "CANCEL_NEW"), name
