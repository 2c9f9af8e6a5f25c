"""The nightly flow on each task runner: threads, a Dask cluster reached by
its address, and a local Dask cluster of worker processes — the same plans
whatever the runner and the number of partitions (docs/operations.md)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
import pytest
from distributed import LocalCluster
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.nightly import nightly_replenishment, select_task_runner
from replenish.demo import generate_demo
from replenish.errors import ConfigurationError
from replenish.settings import Settings
from replenish.sources.generic import write_snapshot
from replenish.store import Store
from tasks.plan import PROGRESS_KEY, progress_listener

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

AS_OF = date(2026, 11, 20)


@pytest.fixture(scope="module")
def erp_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{(tmp_path_factory.mktemp('erp') / 'erp.db').as_posix()}"
    write_snapshot(generate_demo(AS_OF, seed=11, n_skus=30, days=200), url)
    return url


@pytest.fixture
def store_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, erp_url: str) -> str:
    db = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    monkeypatch.setenv("REPLENISH_ERP_URL", erp_url)
    monkeypatch.setenv("REPLENISH_DB_URL", db)
    for name in ("TASK_RUNNER", "DASK_ADDRESS", "DASK_WORKERS", "DASK_PROCESSES"):
        monkeypatch.delenv(f"REPLENISH_{name}", raising=False)
    return db


def _run(db: str, runner: Any = None, **params: Any) -> tuple[pd.DataFrame, dict[str, Any], UUID]:
    """One dry run (plans stored, nothing sent); its plans, summary and flow run id."""
    flow = (
        nightly_replenishment
        if runner is None
        else nightly_replenishment.with_options(task_runner=runner)
    )
    state = flow(as_of=AS_OF, dry_run=True, return_state=True, report_top_n=0, **params)
    summary = state.result()
    store = Store(db)
    try:
        plans = store.plans(summary["run_id"])
    finally:
        store.dispose()
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return plans, summary, flow_run_id


def _progress(flow_run_id: UUID) -> list[float]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(any_=[PROGRESS_KEY]),
            )
        )
    return [float(a.data) for a in found if a.type == "progress"]


@pytest.fixture(scope="module")
def reference(erp_url: str, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Plans of the default run: threads, one partition."""
    db = f"sqlite:///{(tmp_path_factory.mktemp('ref') / 'store.db').as_posix()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPLENISH_ERP_URL", erp_url)
        mp.setenv("REPLENISH_DB_URL", db)
        plans, summary, flow_run_id = _run(db)
    assert summary["partitions"] == 1
    assert _progress(flow_run_id) == [100.0]
    assert len(plans) > 40 and plans["order_qty"].gt(0).any()
    return plans


def test_dask_cluster_at_an_address_gives_the_same_plans(
    store_db: str, reference: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing cluster of two worker processes (the partitions' frames
    pickled to them and back), reached the way a deployment reaches one:
    REPLENISH_TASK_RUNNER=dask and REPLENISH_DASK_ADDRESS; three partitions
    against the reference's one, with progress reported per step."""
    told: list[tuple[float, str]] = []
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        monkeypatch.setenv("REPLENISH_TASK_RUNNER", "dask")
        monkeypatch.setenv("REPLENISH_DASK_ADDRESS", cluster.scheduler_address)
        runner = select_task_runner()
        assert isinstance(runner, DaskTaskRunner)
        assert runner.address == cluster.scheduler_address
        with progress_listener(lambda pct, label: told.append((pct, label))):
            plans, summary, flow_run_id = _run(store_db, runner, partitions=3)
        # the partition tasks ran on the cluster's workers
        ran = cluster.scheduler.task_prefixes
        assert any("forecast" in name for name in ran), sorted(ran)
    assert summary["partitions"] == 3
    pd.testing.assert_frame_equal(plans, reference, check_exact=True)
    # shared inputs, 3 forecasts, 3 ABC values, 3 plans: 10 steps
    assert [round(pct) for pct, _ in told] == [10 * k for k in range(11)]
    assert {label for _, label in told} >= {"forecast 1/3", "ABC values 3/3", "plan 2/3"}
    assert _progress(flow_run_id) == [100.0]


def test_local_dask_cluster_from_the_settings_starts() -> None:
    """REPLENISH_TASK_RUNNER=dask without an address: the runner's local
    cluster starts with the configured workers (in-process here, for speed)."""
    runner = select_task_runner(Settings(task_runner="dask", dask_workers=2, dask_processes=False))
    assert isinstance(runner, DaskTaskRunner) and runner.address is None
    with runner:
        workers = runner.client.scheduler_info()["workers"]
        assert len(workers) == 2
        assert all(w["nthreads"] == 1 for w in workers.values())
        assert runner.client.submit(sum, [1, 2, 3]).result() == 6


def test_task_runner_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TASK_RUNNER", "DASK_ADDRESS", "DASK_WORKERS", "DASK_PROCESSES"):
        monkeypatch.delenv(f"REPLENISH_{name}", raising=False)
    assert isinstance(select_task_runner(), ThreadPoolTaskRunner)
    local = select_task_runner(Settings(task_runner="dask"))
    assert isinstance(local, DaskTaskRunner) and local.address is None
    assert local.cluster_kwargs["processes"] is True
    assert local.cluster_kwargs["n_workers"] >= 1
    assert local.cluster_kwargs["dashboard_address"].startswith("127.0.0.1:")
    monkeypatch.setenv("REPLENISH_TASK_RUNNER", "spark")
    with pytest.raises(ConfigurationError, match="task_runner"):
        select_task_runner()
    monkeypatch.setenv("REPLENISH_TASK_RUNNER", "dask")
    monkeypatch.setenv("REPLENISH_DASK_WORKERS", "0")
    with pytest.raises(ConfigurationError, match="dask_workers"):
        select_task_runner()


def test_bad_partitions_parameter_fails_the_run(store_db: str) -> None:
    state = nightly_replenishment(
        as_of=AS_OF, dry_run=True, partitions=0, return_state=True, report_top_n=0
    )
    assert state.is_failed()
    assert "partitions" in str(state.message) or "partitions" in repr(
        state.result(raise_on_failure=False)
    )
