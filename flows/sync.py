"""The intraday sync flow (hourly): sales channels into the demand cache, then
the stock watch against the night's plan (docs/deployment.md)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import wait

from replenish.errors import SourceError
from replenish.sources.channels.sync import DEFAULT_CHANNEL_DIR
from tasks.sync import StockCheck, check_stock, sync_channel_task


@flow(name="intraday-sync", log_prints=True)
def intraday_sync(
    channels: list[str] | None = None,
    stock: bool = True,
    full_refresh: bool = False,
    channel_dir: str = str(DEFAULT_CHANNEL_DIR),
) -> dict[str, Any]:
    """Sync the sales channels into the demand cache and check today's stock.

    Args:
        channels: channels to sync, by name: each one is the file
            config/channels/NAME.yaml (a Shopify or WooCommerce channel, see
            docs/channels.md). Empty: no channel, only the stock check.
        stock: read the ERP's stock levels and list the SKUs that ran out, or
            fell below safety stock or the reorder point, since the nightly plan.
        full_refresh: read every order of the channels again and rebuild their
            cache (after a bulk edit of old orders in a shop).
        channel_dir: folder of the channel files, relative to the worker's
            working directory.
    """
    as_of = date.today()
    names = list(dict.fromkeys(channels or []))
    futures = {name: sync_channel_task.submit(name, full_refresh, channel_dir) for name in names}
    wait(list(futures.values()))
    synced: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for name, future in futures.items():
        state = future.state
        if state.is_completed():
            synced[name] = future.result()
        else:
            exc = state.result(raise_on_failure=False)
            failed[name] = (
                f"{type(exc).__name__}: {exc}" if isinstance(exc, Exception) else str(exc)
            )

    check: StockCheck | None = check_stock(as_of) if stock else None

    create_markdown_artifact(
        key="intraday-sync",
        markdown=_summary_markdown(as_of, synced, failed, check),
        description=f"Intraday sync of {as_of.isoformat()}",
    )
    if check is not None:
        create_table_artifact(
            key="intraday-stock",
            table=_table_rows(check.watch),
            description=(
                f"SKU × locations that crossed zero, safety stock or the reorder point "
                f"since the plan of {check.plan_as_of} (docs/deployment.md)"
            ),
        )
    if failed:
        # the other channels were synced and the stock checked: fail the run now
        raise SourceError(
            "channel sync failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
        )
    return {
        "as_of": as_of.isoformat(),
        "channels": synced,
        "stock": check.counts() if check is not None else None,
    }


def _table_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-ready rows for a table artifact (NaN as None, floats rounded)."""
    out = frame.astype(object).where(frame.notna(), None)
    rows = out.to_dict("records")
    return [
        {str(k): round(v, 2) if isinstance(v, float) else v for k, v in row.items()} for row in rows
    ]


def _summary_markdown(
    as_of: date,
    synced: dict[str, dict[str, Any]],
    failed: dict[str, str],
    check: StockCheck | None,
) -> str:
    lines = [f"# Intraday sync {as_of.isoformat()}", ""]
    if synced or failed:
        lines += [
            "| channel | orders | lines | returns | rejected | removed lines | watermark |",
            "|---|--:|--:|--:|--:|--:|---|",
        ]
        for name, r in synced.items():
            lines.append(
                f"| {name} | {r['orders']} | {r['lines']} | {r['returns']} | {r['rejected']} "
                f"| {r['removed_lines']} | {r['watermark'] or 'none'} |"
            )
        for name, message in failed.items():
            lines.append(f"| {name} | failed: {message} | | | | | |")
        rejected = [r["run_id"] for r in synced.values() if r["run_id"]]
        if rejected:
            lines += [
                "",
                "Rejected rows: "
                + ", ".join(f"`replenish quarantine --run {run}`" for run in rejected),
            ]
    else:
        lines.append("No channel to sync.")
    lines.append("")
    if check is None:
        lines.append("Stock check: off.")
    elif check.plan_run_id is None:
        lines.append(f"Stock check: {check.positions} positions read; no nightly plan yet.")
    else:
        counts = check.watch["status"].value_counts().to_dict() if len(check.watch) else {}
        found = ", ".join(f"{v} {str(k).replace('_', ' ')}" for k, v in counts.items()) or "nothing"
        lines.append(
            f"Stock check: {check.positions} positions against the plan of "
            f"{check.plan_as_of}: {found} since the plan (table artifact `intraday-stock`)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    intraday_sync()
