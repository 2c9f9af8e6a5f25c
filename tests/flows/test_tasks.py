"""Task options that matter in production: what is retried, and what is not."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from sqlalchemy import create_engine, text

from replenish.errors import ContractError, SourceUnavailable
from replenish.sources.generic import write_snapshot
from tasks.extract import extract_erp
from tests.factories import tiny_snapshot

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

AS_OF = date(2026, 11, 20)


def _run_extract() -> tuple[BaseException | None, int]:
    """Run the real extract task (retry delays 0) in a flow; return its
    exception and how many times it ran."""
    fast = extract_erp.with_options(retry_delay_seconds=0)

    @flow
    def probe() -> tuple[BaseException | None, UUID | None]:
        state = fast(AS_OF, None, 30, return_state=True)
        error = state.result(raise_on_failure=False) if state.is_failed() else None
        return error, state.state_details.task_run_id

    error, task_run_id = probe()
    assert task_run_id is not None
    with get_client(sync_client=True) as client:
        return error, client.read_task_run(task_run_id).run_count


def test_unreachable_erp_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused connection is transient: the task runs 1 + 3 retries, then fails."""
    monkeypatch.setenv("REPLENISH_ERP_URL", "postgresql+psycopg://u:pw@127.0.0.1:1/erp")
    error, runs = _run_extract()
    assert isinstance(error, SourceUnavailable)
    assert runs == 4


def test_missing_table_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing table will not heal by itself: one attempt, a clear error."""
    url = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    write_snapshot(tiny_snapshot(AS_OF), url)
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("DROP TABLE stock_levels"))
    engine.dispose()
    monkeypatch.setenv("REPLENISH_ERP_URL", url)
    error, runs = _run_extract()
    assert isinstance(error, ContractError)
    assert runs == 1
