"""The same nightly flow, unchanged, on the Odoo (PostgreSQL) and ERPNext
(MariaDB) profiles: only REPLENISH_ERP_PROFILE and REPLENISH_ERP_URL differ.
The schemas and rows are those of tests/adapters/test_erp_profiles.py (the
ERPs' real table and column names)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from flows.nightly import nightly_replenishment
from replenish.store import Store
from tests.adapters.test_erp_profiles import erpnext_url, odoo_url  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


@pytest.mark.parametrize("profile", ["odoo", "erpnext"])
def test_the_nightly_flow_runs_unchanged_on_each_erp_profile(
    profile: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = request.getfixturevalue(f"{profile}_url")
    store_url = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    monkeypatch.setenv("REPLENISH_ERP_URL", url)
    monkeypatch.setenv("REPLENISH_ERP_PROFILE", profile)
    monkeypatch.setenv("REPLENISH_DB_URL", store_url)
    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path))
    summary = nightly_replenishment(as_of=date.today(), history_days=365, report_top_n=0)
    store = Store(store_url)
    run = store.runs(1).iloc[0]
    assert run["status"] == "completed", run["message"]
    plans = store.plans(summary["run_id"])
    assert {"W-1"} <= set(plans["sku"])
    assert plans["inventory_position"].notna().all()
    assert summary["plans"] == len(plans)
