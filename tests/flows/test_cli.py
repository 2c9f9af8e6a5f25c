"""The `replenish` command: the CLI contract, on PostgreSQL, and its one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from replenish.cli import app
from replenish.demo import generate_demo
from replenish.sources.generic import write_snapshot

AS_OF = date(2026, 11, 20)
PLAN_COLUMNS = {
    "sku",
    "location_id",
    "demand_mean",
    "demand_std",
    "lead_time_mean",
    "lead_time_std",
    "service_level",
    "safety_stock",
    "reorder_point",
    "inventory_position",
    "order_qty",
    "supplier_id",
}
ORDER_COLUMNS = {"po_key", "supplier_id", "location_id", "sku", "qty", "unit_price", "line_value"}


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_plan_on_postgres_explains_and_is_idempotent(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`replenish plan` on a generic ERP in PostgreSQL, storing in PostgreSQL:
    explained plans, draft orders, and a second run that changes nothing;
    ``--report-top 0`` draws no per-SKU report."""
    # set first, so that monkeypatch restores what the CLI writes into os.environ
    for var in ("REPLENISH_ERP_URL", "REPLENISH_DB_URL"):
        monkeypatch.setenv(var, postgres_url)
    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path))
    write_snapshot(generate_demo(AS_OF, seed=3, n_skus=40, days=300), postgres_url)
    runner = CliRunner()
    args = ["plan", "--erp", postgres_url, "--db", postgres_url, "--as-of", AS_OF.isoformat()]
    first = runner.invoke(app, [*args, "--report-top", "0"])
    assert first.exit_code == 0, first.output
    assert "Draft orders:" in first.output
    assert not (tmp_path / "reports").exists()

    plans = pd.read_csv(
        io.StringIO(runner.invoke(app, ["plans", "--db", postgres_url, "--format", "csv"]).output)
    )
    assert set(plans.columns) >= PLAN_COLUMNS
    assert len(plans) > 40
    ordered = plans[plans["order_qty"] > 0]
    assert len(ordered) > 0
    # explained: the reorder point is the expected lead-time demand (the
    # forecast's seasonal daily path over L) plus the safety stock, every row
    stock = plans[plans["replenishment_mode"] == "stock"].dropna(subset=["reorder_point"])
    assert len(stock) > 40
    rop = stock["lead_time_demand"] + stock["safety_stock"]
    assert (rop - stock["reorder_point"]).abs().max() < 1e-6
    assert stock["reason"].str.len().min() > 20

    out = runner.invoke(app, ["orders", "--db", postgres_url, "--format", "json"])
    orders = json.loads(out.output)
    assert orders and set(orders[0]) >= ORDER_COLUMNS

    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert len(list((tmp_path / "reports").glob("*.html"))) == 1  # by default: the report
    again = json.loads(
        runner.invoke(app, ["orders", "--db", postgres_url, "--format", "json"]).output
    )
    assert again == orders


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLENISH_")}
    return subprocess.run(
        [sys.executable, "-m", "replenish.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["plan", "--erp", "postgresql+psycopg://u:hunter2@127.0.0.1:1/erp"],
            1,
            "cannot read the ERP database at postgresql+psycopg://u:***@127.0.0.1:1/erp",
        ),
        (["plan", "--erp", "sqlite:///missing.db"], 2, "SQLite file not found: missing.db"),
        (["plan", "--as-of", "2026-13-01"], 2, "--as-of: expected a date as YYYY-MM-DD"),
        (["plans", "--db", "nonsense"], 2, "not a database URL"),
    ],
)
def test_errors_are_one_line(args: list[str], code: int, message: str, tmp_path: Path) -> None:
    result = _cli(*args, tmp_path=tmp_path)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_missing_table_is_one_line(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    erp = tmp_path / "erp.db"
    write_snapshot(generate_demo(AS_OF, seed=1, n_skus=20, days=60), f"sqlite:///{erp}")
    engine = create_engine(f"sqlite:///{erp}")
    with engine.begin() as c:
        c.execute(text("DROP TABLE supplier_products"))
    engine.dispose()
    result = _cli("plan", "--erp", f"sqlite:///{erp}", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "table 'supplier_products' is missing" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_blocked_gate_exits_3_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stale stock snapshot: the run stops before ordering and the command
    exits 3 (the exit code must survive typer's non-standalone mode)."""
    from sqlalchemy import create_engine, text

    from replenish.cli import main

    erp, db = f"sqlite:///{tmp_path / 'erp.db'}", f"sqlite:///{tmp_path / 'store.db'}"
    # set first, so that monkeypatch restores what the CLI writes into os.environ
    monkeypatch.setenv("REPLENISH_ERP_URL", erp)
    monkeypatch.setenv("REPLENISH_DB_URL", db)
    write_snapshot(generate_demo(AS_OF, seed=2, n_skus=20, days=120), erp)
    engine = create_engine(erp)
    with engine.begin() as c:
        c.execute(text("UPDATE stock_levels SET as_of = '2026-10-01 00:00:00.000000'"))
    engine.dispose()
    monkeypatch.setattr(
        sys, "argv", ["replenish", "plan", "--erp", erp, "--db", db, "--as-of", AS_OF.isoformat()]
    )
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 3
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "validation gate stopped the run" in err[0]


def test_the_temporary_prefect_api_gets_time_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first run on a new machine creates and migrates Prefect's database
    before the temporary API answers: more than Prefect's default 20 s on a
    slow 2-core machine (`make demo` failed there). The CLI allows 180 s,
    unless the user chose a limit."""
    from replenish.cli import _configure

    var = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    monkeypatch.setenv(var, "0")  # recorded, so the test's change is undone
    monkeypatch.delenv(var)
    _configure(None, None, True)  # verbose: leaves the logging variables alone
    assert os.environ[var] == "180"
    monkeypatch.setenv(var, "45")
    _configure(None, None, True)
    assert os.environ[var] == "45"
