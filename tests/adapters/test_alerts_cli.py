"""`replenish alerts`: the open and resolved alerts of a date, from the store."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from replenish.cli import app, main
from replenish.notify import Alert, LogNotifier
from replenish.notify.dispatch import dispatch
from replenish.notify.lifecycle import AlertScope
from replenish.notify.rules import SKU_KINDS
from replenish.store import Store

DAY = date(2026, 11, 20)


def stockout(sku: str, cover: float, severity: str) -> Alert:
    return Alert(
        kind="stockout_risk",
        severity=severity,
        title=f"{sku} @ WH1: stockout before the next delivery",
        message="m",
        sku=sku,
        location_id="WH1",
        details={"days_of_cover": cover},
    )


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    monkeypatch.setenv("REPLENISH_DB_URL", url)  # restored after the CLI sets it
    store = Store(url)
    log = [LogNotifier(logging.getLogger("replenish.test.cli"))]
    scope = [AlertScope(SKU_KINDS)]
    first = [stockout("SKU-1", 2.0, "critical"), stockout("SKU-2", 6.0, "warning")]
    dispatch(store, log, DAY, "r1", first, heading="h", scopes=scope)
    dispatch(store, log, DAY + timedelta(days=1), "r2", first[1:], heading="h", scopes=scope)
    store.dispose()
    return url


def test_alerts_of_a_date_as_text_and_json(db: str) -> None:
    runner = CliRunner()
    day1 = runner.invoke(app, ["alerts", "--db", db, "--as-of", "2026-11-20"])
    assert day1.exit_code == 0, day1.output
    lines = day1.output.splitlines()
    assert lines[0] == "Alerts on 2026-11-20: 2 open"
    assert lines[2] == "OPEN (2)"
    assert lines[3].split()[:2] == ["critical", "stockout_risk"] and "SKU-1" in lines[3]
    assert "since 2026-11-20; announced 1x, last 2026-11-20" in day1.output

    day2 = runner.invoke(app, ["alerts", "--db", db, "--as-of", "2026-11-21"])
    assert "Alerts on 2026-11-21: 1 open, 1 resolved" in day2.output
    assert day2.output.index("OPEN (1)") < day2.output.index("RESOLVED (1)")
    assert "since 2026-11-20, resolved 2026-11-21" in day2.output

    resolved = runner.invoke(
        app,
        ["alerts", "--db", db, "--as-of", "2026-11-21", "--status", "resolved", "--format", "json"],
    )
    (row,) = json.loads(resolved.output)
    assert row["sku"] == "SKU-1" and row["status_on_date"] == "resolved"
    assert row["resolved_as_of"].startswith("2026-11-21") and row["notify_count"] == 1

    now = runner.invoke(app, ["alerts", "--db", db, "--status", "open", "--format", "csv"])
    assert now.output.splitlines()[0].startswith("status_on_date,severity,kind,sku")
    assert len(now.output.splitlines()) == 2 and ",SKU-2," in now.output

    empty = runner.invoke(app, ["alerts", "--db", db, "--as-of", "2026-11-01"])
    assert empty.exit_code == 0 and empty.output.strip() == "No alerts on 2026-11-01."


def test_alerts_bad_date_is_a_usage_error(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["replenish", "alerts", "--db", db, "--as-of", "20/11/2026"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "--as-of: expected a date as YYYY-MM-DD, got '20/11/2026'" in capsys.readouterr().err
