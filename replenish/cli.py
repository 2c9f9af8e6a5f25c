"""The ``replenish`` command.

The one module of the package that may import ``flows/`` (to run them).
Errors print one line naming what is wrong and exit non-zero:
1 = a replenish error (unreachable database, missing table or column, ...),
2 = a usage error (bad flag or date), 3 = the validation gate stopped the run.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from replenish.errors import ConfigurationError, DataQualityError, ReplenishError

# Offline by default: no analytics, no telemetry (set before Prefect is imported).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

app = typer.Typer(
    name="replenish",
    no_args_is_help=True,
    add_completion=False,
    help="Just-in-time replenishment: plans, draft supplier orders and alerts.",
)


class Format(StrEnum):
    csv = "csv"
    json = "json"


DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Store URL (default: REPLENISH_DB_URL or sqlite:///replenish-data/replenish.db)",
    ),
]
ErpOpt = Annotated[
    str | None,
    typer.Option(
        "--erp", help="ERP database URL (default: REPLENISH_ERP_URL or the demo SQLite file)"
    ),
]
RunOpt = Annotated[str | None, typer.Option("--run", help="Run id (default: the latest run)")]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format")]


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise ConfigurationError(f"--as-of: expected a date as YYYY-MM-DD, got {value!r}") from None


def _configure(erp: str | None, db: str | None, verbose: bool) -> Any:
    """Put the connection settings where the flow's tasks read them (the
    environment: never flow parameters, so no URL ends up in Prefect)."""
    from replenish.settings import Settings

    if erp:
        os.environ["REPLENISH_ERP_URL"] = erp
    if db:
        os.environ["REPLENISH_DB_URL"] = db
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Without PREFECT_API_URL the run starts a temporary Prefect API, which
    # Prefect gives 20 s to start: its first start on a machine also creates
    # and migrates Prefect's database, which took longer on a slow 2-core
    # machine, and `make demo` failed with "Timed out while attempting to connect".
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    return Settings()


@contextmanager
def _progress_bar() -> Iterator[None]:
    """A progress bar of the forecast and plan on stderr when it is a
    terminal (fed by tasks.plan's progress reports); nothing otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from tasks.plan import progress_listener

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(
        *columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True
    ) as bar:
        job = bar.add_task("extract and validate", total=100)

        def show(percent: float, label: str) -> None:
            text = f"forecast and plan: {label}" if percent < 100 else "storing and publishing"
            bar.update(job, completed=percent, description=text)

        with progress_listener(show):
            yield


def _run_plan(
    settings: Any,
    as_of: date | None,
    dry_run: bool,
    skus: list[str] | None,
    full_refresh: bool = False,
    partitions: int | None = None,
    report_top: int = 10,
) -> None:
    from replenish.sources import open_erp
    from replenish.store import Store

    # Fail fast, with one line, before Prefect starts and before the flow is
    # even imported (several seconds): unreachable ERP or store, missing table
    # or column.
    erp = open_erp(settings.erp(), profile=settings.erp_profile)
    erp.check_contract()
    erp.engine.dispose()
    store = Store(settings.store())

    from flows.nightly import nightly_replenishment, select_task_runner
    from replenish.notify.rules import plan_alerts
    from replenish.report import text_summary
    from replenish.sources.db import safe_url

    # the task runner of the settings given now (REPLENISH_TASK_RUNNER, ...)
    run = nightly_replenishment.with_options(task_runner=select_task_runner(settings))
    with _progress_bar():
        state = run(
            as_of=as_of,
            dry_run=dry_run,
            skus=skus or None,
            full_refresh=full_refresh,
            partitions=partitions,
            report_top_n=report_top,
            return_state=True,
        )
    if state.is_failed() or state.is_crashed():
        exc = state.result(raise_on_failure=False)
        if isinstance(exc, DataQualityError):
            _fail(str(exc), 3)
        if isinstance(exc, ReplenishError):
            _fail(str(exc))
        _fail(f"the run failed: {state.message or exc}")
    summary = state.result()
    run_id = summary["run_id"]
    plans = store.plans(run_id)
    lines = store.orders(as_of=date.fromisoformat(summary["as_of"]))
    if dry_run:
        lines = lines.iloc[0:0]
    typer.echo(text_summary(summary, lines, plans, plan_alerts(plans), safe_url(settings.store())))
    store.dispose()


@app.command()
def demo(
    erp: ErpOpt = None,
    db: DbOpt = None,
    seed: Annotated[int, typer.Option(help="Random seed of the demo shop")] = 7,
    skus: Annotated[int, typer.Option("--skus", min=20, max=9999, help="Number of SKUs")] = 200,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect logs")] = False,
) -> None:
    """Write a demo shop ERP (SQLite by default) and run the nightly plan on it."""
    from replenish.demo import generate_demo
    from replenish.sources.db import safe_url
    from replenish.sources.generic import write_snapshot

    settings = _configure(erp, db, verbose)
    as_of = date.today()
    typer.echo(f"Writing the demo shop ({skus} SKUs, seed {seed}) to {safe_url(settings.erp())}")
    counts = write_snapshot(generate_demo(as_of, seed=seed, n_skus=skus), settings.erp())
    typer.echo("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    typer.echo("Running the nightly plan ...")
    _run_plan(settings, as_of, False, None)


@app.command("import-csv")
def import_csv(
    file: Annotated[
        str, typer.Option("--file", help="The channel's CSV export (.gz, .bz2, .zip, .xz too)")
    ],
    mapping: Annotated[
        str, typer.Option("--mapping", help="Channel mapping YAML (see config/channels/)")
    ],
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            help="Scenario YAML (see config/scenarios/): suppliers, costs, stock, receipts",
        ),
    ] = None,
    erp: Annotated[
        str | None,
        typer.Option("--erp", help="Write the generic-profile ERP here (needs --scenario)"),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Scenario planning day YYYY-MM-DD (default: the day after the last sale)",
        ),
    ] = None,
    rejected: Annotated[
        str | None, typer.Option("--rejected", help="Write the rejected rows to this CSV file")
    ] = None,
) -> None:
    """Import a sales channel's CSV export and print what it found; with
    --scenario build an ERP around the sales, with --erp write it (replaced)."""
    from datetime import timedelta

    from replenish.scenario import build_snapshot, load_scenario
    from replenish.sources.csv_export import load_mapping, read_export
    from replenish.sources.db import safe_url
    from replenish.sources.generic import write_snapshot

    if erp is not None and scenario is None:
        raise ConfigurationError(
            "--erp needs --scenario: the export has only sales, the scenario invents the "
            "suppliers, costs, stock and receipts an ERP needs"
        )
    day = _parse_date(as_of)
    export_mapping = load_mapping(mapping)
    spec = load_scenario(scenario) if scenario is not None else None
    result = read_export(file, export_mapping)
    typer.echo(result.report.text())
    if rejected is not None:
        result.rejected.to_csv(rejected, index=False)
        typer.echo(f"Rejected rows written to {rejected}")
    if spec is None:
        return
    last = result.report.last_ordered_at
    if day is None:
        if last is None:
            raise ConfigurationError(f"{file}: no line imported: nothing to build an ERP on")
        day = last.date() + timedelta(days=1)
    snapshot = build_snapshot(result.lines, result.extras, spec, day)
    if erp is None:
        counts = snapshot.row_counts()
        typer.echo(f"Scenario as of {day} (not written: add --erp URL)")
    else:
        counts = write_snapshot(snapshot, erp)
        typer.echo(f"Wrote the ERP as of {day} to {safe_url(erp)}")
    typer.echo("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if erp is not None:
        typer.echo(f"Next: replenish plan --erp {safe_url(erp)} --as-of {day}")


@app.command("plan")
def plan_cmd(
    erp: ErpOpt = None,
    db: DbOpt = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Planning date YYYY-MM-DD (default: today)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Record plans; write no order, send no alert")
    ] = False,
    sku: Annotated[
        list[str] | None, typer.Option("--sku", help="Plan only this SKU (repeatable)")
    ] = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh",
            help="Rebuild the demand cache from the ERP's whole sales history",
        ),
    ] = False,
    partitions: Annotated[
        int | None,
        typer.Option(
            "--partitions",
            min=1,
            help="Forecast and plan in N partitions of SKUs (default: by size)",
        ),
    ] = None,
    report_top: Annotated[
        int,
        typer.Option(
            "--report-top",
            min=0,
            help="Per-SKU report: pictures of the N largest proposed orders (0: no report)",
        ),
    ] = 10,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect logs")] = False,
) -> None:
    """Run the nightly plan against an ERP database (a progress bar on a terminal)."""
    settings = _configure(erp, db, verbose)
    _run_plan(settings, _parse_date(as_of), dry_run, sku, full_refresh, partitions, report_top)


@contextmanager
def _store(db: str | None) -> Iterator[Any]:
    from replenish.store import Store

    store = Store(_configure(None, db, False).store())
    try:
        yield store
    finally:
        store.dispose()


def _emit(frame: Any, fmt: Format) -> None:
    if fmt is Format.csv:
        nested = [
            c for c in frame.columns if frame[c].map(lambda v: isinstance(v, dict | list)).any()
        ]
        frame = frame.assign(**{c: frame[c].map(json.dumps) for c in nested})
        frame.to_csv(sys.stdout, index=False)
    else:
        typer.echo(
            json.dumps(json.loads(frame.to_json(orient="records", date_format="iso")), indent=2)
        )


@app.command()
def plans(db: DbOpt = None, run: RunOpt = None, format: FormatOpt = Format.csv) -> None:
    """Every SKU×location of a run with every input and intermediate."""
    with _store(db) as store:
        _emit(store.plans(store.resolve_run(run)), format)


class ExportKind(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


#: Draft statuses that are exported and pushed (rejected and superseded
#: orders are not; a push sends only the approved ones and lists the others).
OPEN_DRAFT_STATUSES = ("draft", "approved")


@app.command()
def orders(
    db: DbOpt = None,
    run: RunOpt = None,
    format: FormatOpt = Format.csv,
    export: Annotated[
        list[ExportKind] | None,
        typer.Option(
            "--export",
            help="Write one file per order (draft or approved) instead: csv or xlsx (repeatable)",
        ),
    ] = None,
    out: Annotated[
        str | None, typer.Option("--out", help="Folder of the exported files (with --export)")
    ] = None,
) -> None:
    """Draft purchase order lines of a run's planning date, or (--export) one
    CSV/XLSX file per order to send to the supplier (docs/publishing.md)."""
    if export and out is None:
        raise ConfigurationError("--export needs --out DIR: the folder of the files")
    if out is not None and not export:
        raise ConfigurationError("--out needs --export csv or --export xlsx")
    with _store(db) as store:
        run_id = store.resolve_run(run)
        if not export:
            _emit(store.orders(run_id=run_id), format)
            return
        from replenish.orders.export import export_orders

        frame = store.orders(run_id=run_id, statuses=OPEN_DRAFT_STATUSES)
        result = export_orders(frame, str(out), formats=export, plans=store.plans(run_id))
        typer.echo(result.text())


class PushTarget(StrEnum):
    odoo = "odoo"
    erpnext = "erpnext"


@app.command()
def push(
    target: Annotated[PushTarget, typer.Option("--target", help="The ERP to push to")],
    db: DbOpt = None,
    run: RunOpt = None,
) -> None:
    """Push the approved draft orders of a run's planning date to the ERP as
    draft RFQs (Odoo) / draft purchase orders (ERPNext), idempotently, and
    record the ERP's reference on each draft (docs/publishing.md)."""
    from replenish.orders.push import PushUnavailable, push_orders

    with _store(db) as store:
        run_id = store.resolve_run(run)
        frame = store.orders(run_id=run_id, statuses=OPEN_DRAFT_STATUSES)
        try:
            report = push_orders(target.value, frame, plans=store.plans(run_id))
        except PushUnavailable as e:
            if e.report is not None:
                store.record_push(e.report.to_frame())
            raise
        store.record_push(report.to_frame())
        typer.echo(report.text())
        report.raise_on_failure()


@app.command()
def approve(
    by: Annotated[
        str | None, typer.Option("--by", help="Who decides (recorded with the decision)")
    ] = None,
    po: Annotated[
        list[str] | None,
        typer.Option("--po", help="The order's po_key, e.g. 2026-11-20/SUP-A/WH1 (repeatable)"),
    ] = None,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approve")] = False,
    qty: Annotated[
        list[str] | None,
        typer.Option("--qty", help="Change a line before approving: SKU=QUANTITY, 0 removes it"),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why (kept with it)")] = None,
    db: DbOpt = None,
    run: RunOpt = None,
) -> None:
    """Approve or reject draft orders of a run's planning date, as the
    approval form of a paused run does; without --po, list the orders still
    waiting for a decision."""
    from replenish.orders.approval import parse_quantities

    quantities = parse_quantities(qty)
    if reject and quantities:
        raise ConfigurationError("--qty changes quantities of an approval: not with --reject")
    if quantities and len(po or []) != 1:
        raise ConfigurationError("--qty needs exactly one --po: the order whose lines change")
    with _store(db) as store:
        run_id = store.resolve_run(run)
        if not po:
            waiting = store.drafts(run_id=run_id, statuses=["draft"])
            typer.echo(f"{len(waiting)} draft order(s) waiting for a decision")
            for h in waiting.to_dict("records"):
                typer.echo(
                    f"  {h['po_key']:<36} {h['line_count']:>4} lines  {h['total_value']:>12,.2f}"
                )
            return
        if not by:
            raise ConfigurationError("--by NAME: say who decides (it is recorded)")
        allowed = set(store.drafts(run_id=run_id)["po_key"])
        for key in po:
            if key not in allowed:
                raise ConfigurationError(
                    f"--po {key}: no draft order of that key for the planning date of run {run_id}"
                )
        for key in po:
            d = store.decide(
                key,
                "rejected" if reject else "approved",
                by,
                via="cli",
                run_id=run_id,
                quantities=quantities,
                note=note,
            )
            changed = "".join(f"; {sku} {a:g} → {b:g}" for sku, (a, b) in d.changes.items())
            again = "" if d.recorded else " (already recorded)"
            typer.echo(
                f"{key}: {d.decision} by {d.decided_by} at {d.decided_at:%Y-%m-%d %H:%M}, "
                f"value {d.total_value:,.2f}{changed}{again}"
            )


class KpiFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


@app.command()
def kpis(
    db: DbOpt = None,
    run: RunOpt = None,
    format: Annotated[KpiFormat, typer.Option("--format", help="Output format")] = (
        KpiFormat.table
    ),
) -> None:
    """The KPIs of a run, as the run stored them (docs/kpis.md)."""
    from replenish.errors import StoreError
    from replenish.report import kpis_text

    with _store(db) as store:
        run_id = store.resolve_run(run)
        data = store.kpis(run_id)
    if data is None:
        raise StoreError(
            f"run {run_id} stored no KPIs (a run stopped by the validation gate, or one "
            "older than the KPIs): see `replenish runs`"
        )
    typer.echo(kpis_text(data, run_id, format.value))


@app.command()
def quarantine(db: DbOpt = None, run: RunOpt = None, format: FormatOpt = Format.csv) -> None:
    """Input rows the validation gate rejected, with the reason."""
    with _store(db) as store:
        _emit(store.quarantine(store.resolve_run(run)), format)


@app.command()
def runs(db: DbOpt = None, limit: int = 20, format: FormatOpt = Format.csv) -> None:
    """The latest runs with their status and counts."""
    with _store(db) as store:
        _emit(store.runs(limit), format)


@app.command()
def sync(
    channel: Annotated[
        str | None,
        typer.Option("--channel", help="Channel NAME: the file config/channels/NAME.yaml"),
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", help="Channel YAML file (instead of --channel)")
    ] = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh", help="Read every order again and rebuild the channel's cache"
        ),
    ] = False,
    db: DbOpt = None,
) -> None:
    """Sync a sales channel (Shopify, WooCommerce) into the demand cache.

    Reads the orders changed since the channel's watermark (docs/channels.md)."""
    from replenish.sources.channels.sync import resolve_channel, sync_channel

    settings = resolve_channel(channel, config)
    with _store(db) as store:
        report = sync_channel(settings, store, full_refresh=full_refresh)
    typer.echo(report.summary())


@app.command()
def sources(db: DbOpt = None, format: FormatOpt = Format.csv) -> None:
    """The sources of the demand cache (the ERP, each channel) and their watermarks."""
    with _store(db) as store:
        _emit(store.sources(), format)


class AlertStatus(StrEnum):
    open = "open"
    resolved = "resolved"
    all = "all"


class AlertsFormat(StrEnum):
    text = "text"
    csv = "csv"
    json = "json"


@app.command()
def alerts(
    db: DbOpt = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Date YYYY-MM-DD: alerts open on it and resolved on it (default: now)"
        ),
    ] = None,
    status: Annotated[
        AlertStatus, typer.Option("--status", help="open, resolved or all")
    ] = AlertStatus.all,
    format: Annotated[AlertsFormat, typer.Option("--format", help="Output format")] = (
        AlertsFormat.text
    ),
) -> None:
    """Open and resolved alerts of a date, most severe first (docs/alerts.md)."""
    import pandas as pd

    from replenish.notify.alerts import format_value

    day = _parse_date(as_of)
    with _store(db) as store:
        frame = store.alert_states(day, status=status.value)
    if format is not AlertsFormat.text:
        _emit(frame, Format(format.value))
        return
    when = f"on {day.isoformat()}" if day else "now"
    if frame.empty:
        typer.echo(f"No {'' if status is AlertStatus.all else status.value + ' '}alerts {when}.")
        return
    counts = frame["status_on_date"].value_counts()
    typer.echo(
        f"Alerts {when}: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("open", "resolved") if s in counts)
    )
    for label, group in frame.groupby("status_on_date", sort=False):
        typer.echo("")
        typer.echo(f"{str(label).upper()} ({len(group)})")
        for r in group.itertuples(index=False):
            since = f"since {r.opened_as_of}"
            if pd.notna(r.resolved_as_of):
                since += f", resolved {r.resolved_as_of}"
            told = (
                f"announced {r.notify_count}x, last {r.notified_as_of}"
                if r.notify_count
                else "not announced"
            )
            typer.echo(f"  {r.severity:<8} {r.kind:<18} {r.title}")
            typer.echo(f"  {'':<8} {'':<18} {since}; {told}")
            details = r.details if isinstance(r.details, dict) else {}
            if details:
                typer.echo(
                    f"  {'':<8} {'':<18} "
                    + ", ".join(
                        f"{k}={format_value(v)}" for k, v in details.items() if v is not None
                    )
                )


class BacktestFormat(StrEnum):
    json = "json"
    table = "table"


def _backtest_day(flag: str, value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise ConfigurationError(f"{flag}: expected a date as YYYY-MM-DD, got {value!r}") from None


@app.command()
def backtest(
    start: Annotated[str, typer.Option("--start", help="First replayed day YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--end", help="Last replayed day YYYY-MM-DD")],
    erp: ErpOpt = None,
    service_level: Annotated[
        float | None,
        typer.Option(
            "--service-level",
            help="Target cycle service level of every SKU, e.g. 0.95 (default: per ABC class)",
        ),
    ] = None,
    refit_every: Annotated[
        int, typer.Option("--refit-every", help="Days between forecast refits (>= 1)")
    ] = 7,
    review_days: Annotated[
        float, typer.Option("--review-days", help="Baseline: max = min + d × this many days")
    ] = 14.0,
    seed: Annotated[int, typer.Option(help="Seed of the lead-time draws")] = 0,
    format: Annotated[
        BacktestFormat, typer.Option("--format", help="Output format")
    ] = BacktestFormat.table,
) -> None:
    """Replay the policy over past sales, beside a static min/max baseline.

    Day by day over [--start, --end]: service levels, fill rate, stock, orders
    and forecast accuracy (docs/backtest.md)."""
    from replenish.backtest import BacktestConfig, backtest_erp, format_table, to_json
    from replenish.settings import Settings

    # a bad date or range raises ConfigurationError (exit 2), an unreadable ERP
    # or one without data a ReplenishError (exit 1): main() prints one line
    config = BacktestConfig(
        start=_backtest_day("--start", start),
        end=_backtest_day("--end", end),
        refit_every=refit_every,
        review_days=review_days,
        seed=seed,
        service_level=service_level,
    )
    result = backtest_erp(erp or Settings().erp(), config)
    typer.echo(to_json(result) if format is BacktestFormat.json else format_table(result))


def main() -> None:
    """Entry point: one clear line per error, never a traceback."""
    from typer.exceptions import Abort, TyperException

    try:
        # standalone_mode=False returns the exit code of typer.Exit instead
        # of raising it, and lets our errors through to be printed as one line
        code = app(standalone_mode=False)
    except typer.Exit as e:
        code = e.exit_code
    except ConfigurationError as e:
        typer.echo(f"error: {e}", err=True)
        code = 2
    except ReplenishError as e:
        typer.echo(f"error: {e}", err=True)
        code = 1
    except TyperException as e:  # usage errors: bad option, bad value
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {e.format_message()}", err=True)
        code = e.exit_code
    except Abort:
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
