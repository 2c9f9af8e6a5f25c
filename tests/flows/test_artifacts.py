"""Run history people can see: a run of the nightly flow under a real Prefect
server publishes its summary, the table of draft orders, the KPI table and
links to its Data Docs and per-SKU report, and keeps its KPIs in the store
for ``replenish kpis``."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from typer.testing import CliRunner

from flows.nightly import nightly_replenishment
from replenish.cli import app
from replenish.demo import generate_demo
from replenish.sources.generic import write_snapshot
from replenish.store import Store

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

AS_OF = date(2026, 11, 20)


def _file(link: str) -> Path:
    """The file of a link artifact (stored as Markdown: ``[text](file:///...)``)."""
    found = re.fullmatch(r"\[[^\]]+\]\((file://[^)]+)\)", link)
    assert found, link
    return Path(unquote(urlsplit(found.group(1)).path))


def test_a_run_publishes_its_artifacts_and_keeps_its_kpis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    erp = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    db = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    write_snapshot(generate_demo(AS_OF, seed=5, n_skus=24, days=200), erp)
    monkeypatch.setenv("REPLENISH_ERP_URL", erp)
    monkeypatch.setenv("REPLENISH_DB_URL", db)
    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path / "home"))

    summary = nightly_replenishment(as_of=AS_OF, auto_approve_below=True, report_top_n=2)
    run_id = summary["run_id"]
    store = Store(db)
    flow_run_id = store.runs(1).iloc[0]["flow_run_id"]

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) >= {
        "replenishment-summary",
        "draft-orders",
        "kpis",
        "data-docs",
        "sku-report",
    }

    # the draft-orders table: one row per order, as the store has them (all auto-approved)
    heads = store.drafts(as_of=AS_OF)
    table = by_key["draft-orders"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert [r["po_key"] for r in rows] == heads["po_key"].tolist()
    assert {(r["status"], r["decided_by"]) for r in rows} == {("approved", "auto")}
    assert [r["value"] for r in rows] == heads["total_value"].round(2).tolist()

    # the KPI table is the stored KPIs of the run
    kpis = store.kpis(run_id)
    assert kpis is not None
    table = by_key["kpis"].data
    kpi_rows = json.loads(table) if isinstance(table, str) else table
    assert {r["kpi"]: r["value"] for r in kpi_rows} == kpis["overall"]
    assert 0 < kpis["overall"]["service_rate"] <= 1
    code = CliRunner().invoke(app, ["kpis", "--db", db, "--format", "json"])
    assert code.exit_code == 0 and json.loads(code.output)["overall"] == kpis["overall"]

    # links to files that exist: the Data Docs and the per-SKU pictures
    docs = _file(str(by_key["data-docs"].data))
    assert docs.name == "index.html" and docs.is_file() and run_id in str(docs)
    report = _file(str(by_key["sku-report"].data))
    assert report == (tmp_path / "home" / "reports" / f"{run_id}.html").resolve()
    page = report.read_text(encoding="utf-8")
    assert page.count("<img") == 2 and "data:image/png;base64," in page

    # the summary says what happened and links both
    md = str(by_key["replenishment-summary"].data)
    assert f"# Replenishment {AS_OF.isoformat()}" in md and run_id in md
    assert f"{len(heads)} auto-approved" in md
    assert docs.as_uri() in md and report.as_uri() in md
    assert "## KPIs" in md and "service_rate" in md
    store.dispose()
