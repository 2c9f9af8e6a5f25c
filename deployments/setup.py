"""Idempotent set-up of what the deployments need: the work pool, the blocks
and the automations (docs/deployment.md, "Set-up").

    python -m deployments.setup                                    # production (prefect.yaml)
    python -m deployments.setup --prefect-file prefect.staging.yaml
    python -m deployments.setup --notify-block custom-webhook/ops-pager --deadline-hours 3

Run it as often as you like (``make worker`` and ``make deploy`` do): every
object is found by its name and created only when missing; an automation
whose definition changed (another deadline, another notification block) is
updated in place, keeping its id. What it sets up is read from the prefect
file, the same one ``prefect deploy --prefect-file`` deploys:

* **work pools**: every ``work_pool.name`` of the file's deployments, of
  type ``process``, created if missing (an existing pool is left as it is:
  its concurrency may have been changed in the UI);
* **blocks**: the alert channels' blocks from the environment's settings
  (:func:`ensure_blocks`: ``deployments/blocks.py``, docs/alerts.md) — a
  Slack webhook block when ``REPLENISH_SLACK_WEBHOOK_URL`` is set, an email
  server block when ``REPLENISH_SMTP_HOST`` is;
* **automations**, one set per file (environment ``production`` for
  ``prefect.yaml``, ``staging`` for ``prefect.staging.yaml``):

  - ``replenish <env>: nightly late`` — a run of the nightly deployment
    started (``prefect.flow-run.Running``) and did not complete within
    ``deadline_hours`` (proactive trigger; the 02:30 run must be done by
    06:30 with the default 4 hours); a run that failed never completes, so
    it fires for that run too (a rerun is a new run);
  - ``replenish <env>: run crashed`` — a run of any of the file's
    deployments crashed (the process died, the worker lost it: the flow's
    own failure hooks could not run);
  - ``replenish <env>: sync failing`` — the intraday sync failed 3 times
    within 4 hours (one failed hour is not worth a page).

  Each one sends a notification through the notification block given with
  ``--notify-block`` (``BLOCK_TYPE_SLUG/BLOCK_NAME``) or
  ``REPLENISH_NOTIFY_BLOCK``, else through the Slack webhook block; without
  one, the automations are created with a ``do-nothing`` action (they still
  show as triggered in the UI's event feed) — rerun the set-up once a block
  exists. The automations are what the last set-up made them: give the same
  block every time (``REPLENISH_NOTIFY_BLOCK`` in ``.env`` does).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events.actions import DoNothing, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_POOL = "replenish-process"
DEFAULT_PREFECT_FILE = Path("prefect.yaml")
#: Work-pool concurrency: a nightly run, a sync and a backtest may overlap.
DEFAULT_POOL_CONCURRENCY = 3
DEFAULT_DEADLINE_HOURS = 4.0

#: entrypoint -> the flow's name (@flow(name=...)): the automations match it.
FLOWS = {
    "flows/nightly.py:nightly_replenishment": "nightly-replenishment",
    "flows/sync.py:intraday_sync": "intraday-sync",
    "flows/backtest.py:weekly_backtest": "weekly-backtest",
}


class SetupSettings(BaseSettings):
    """Set-up settings from the environment or ``.env`` (``REPLENISH_`` prefix)."""

    model_config = SettingsConfigDict(
        env_prefix="REPLENISH_", env_file=".env", extra="ignore", env_file_encoding="utf-8"
    )

    notify_block: str | None = Field(
        None,
        description="TYPE_SLUG/NAME of the notification block the automations notify "
        "(default: the Slack webhook block when REPLENISH_SLACK_WEBHOOK_URL is set)",
    )


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of a prefect file, as far as the set-up needs it."""

    name: str
    flow: str  # the flow's name
    work_pool: str


@dataclass(frozen=True)
class Environment:
    """What one prefect file deploys."""

    name: str  # production, staging, ...
    deployments: tuple[DeploymentSpec, ...]

    @property
    def work_pools(self) -> list[str]:
        return list(dict.fromkeys(d.work_pool for d in self.deployments))

    def of_flow(self, flow: str) -> list[DeploymentSpec]:
        return [d for d in self.deployments if d.flow == flow]


@dataclass
class SetupReport:
    """What :func:`setup` did: per object name, ``created``, ``updated`` or
    ``unchanged`` (``exists`` for a pool left as it was)."""

    environment: str
    work_pools: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, str] = field(default_factory=dict)
    automations: dict[str, str] = field(default_factory=dict)
    automation_ids: dict[str, UUID] = field(default_factory=dict)
    notify_block: str | None = None

    def lines(self) -> list[str]:
        out = [f"environment {self.environment}"]
        out += [f"  work pool {k!r}: {v}" for k, v in self.work_pools.items()]
        out += [f"  block {k!r}: {v}" for k, v in self.blocks.items()]
        out += [f"  automation {k!r}: {v}" for k, v in self.automations.items()]
        if self.notify_block is None:
            out.append(
                "  no notification block: the automations do nothing when they fire "
                "(give --notify-block TYPE/NAME, or configure the alert channels, and rerun)"
            )
        else:
            out.append(f"  automations notify through the block {self.notify_block!r}")
        return out


# ------------------------------------------------------------------ the file


def environment_name(prefect_file: Path) -> str:
    """``production`` for ``prefect.yaml``, ``staging`` for ``prefect.staging.yaml``."""
    parts = prefect_file.name.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "prefect" else "production"


def read_environment(prefect_file: str | Path = DEFAULT_PREFECT_FILE) -> Environment:
    """The deployments of a prefect file (YAML anchors resolved)."""
    path = Path(prefect_file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"error: prefect file {path} not found") from None
    specs = []
    for d in (data or {}).get("deployments") or []:
        entrypoint = str(d.get("entrypoint", ""))
        pool = (d.get("work_pool") or {}).get("name")
        if not pool:
            raise SystemExit(f"error: {path}: deployment {d.get('name')!r} has no work_pool.name")
        flow = FLOWS.get(entrypoint, entrypoint.rpartition(":")[2].replace("_", "-"))
        specs.append(DeploymentSpec(name=str(d["name"]), flow=flow, work_pool=str(pool)))
    if not specs:
        raise SystemExit(f"error: {path}: no deployments")
    return Environment(name=environment_name(path), deployments=tuple(specs))


# -------------------------------------------------------------- work pools


async def ensure_work_pool(
    name: str = DEFAULT_POOL,
    concurrency: int | None = DEFAULT_POOL_CONCURRENCY,
    *,
    client: PrefectClient | None = None,
) -> bool:
    """Create the process work pool ``name`` if it does not exist; True if created."""
    if client is None:
        async with get_client() as own:
            return await ensure_work_pool(name, concurrency, client=own)
    try:
        await client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type="process",
                concurrency_limit=concurrency,
                description="replenish flows, run as local processes (deployments/setup.py)",
            )
        )
    except ObjectAlreadyExists:
        return False
    return True


# ------------------------------------------------------------------ blocks


async def ensure_blocks() -> tuple[dict[str, str], str | None]:
    """The alert channels' blocks, created or updated from the environment
    (``REPLENISH_SLACK_WEBHOOK_URL``, ``REPLENISH_SMTP_*``) by
    :func:`deployments.blocks.ensure_notification_blocks` (docs/alerts.md).

    Returns (``"<channel> <block name>"`` -> created/updated/unchanged/skipped,
    the ``TYPE_SLUG/NAME`` of the block the automations notify: the Slack
    webhook block when Slack is configured, else None — the email block holds
    SMTP credentials, not a Prefect notification block).
    """
    from prefect_slack import SlackWebhook

    from deployments.blocks import ensure_notification_blocks

    statuses = await ensure_notification_blocks()
    notify = None
    for key, status in statuses.items():
        channel, _, name = key.partition(" ")
        if channel == "slack" and status != "skipped":
            notify = f"{SlackWebhook.get_block_type_slug()}/{name}"
    return statuses, notify


async def _notification_block_id(client: PrefectClient, slug_and_name: str) -> UUID:
    """The id of the block document ``TYPE_SLUG/NAME``; SystemExit naming it if absent."""
    block_type, _, name = slug_and_name.partition("/")
    if not block_type or not name:
        raise SystemExit(
            f"error: --notify-block {slug_and_name!r}: expected BLOCK_TYPE_SLUG/BLOCK_NAME, "
            "e.g. custom-webhook/ops-alerts (see `prefect block ls`)"
        )
    try:
        document = await client.read_block_document_by_name(name, block_type)
    except ObjectNotFound:
        raise SystemExit(
            f"error: notification block {slug_and_name!r} not found on the Prefect server "
            "(create it in the UI under Blocks, or with `prefect block create`)"
        ) from None
    return document.id


# ------------------------------------------------------------- automations


def automations(
    env: Environment,
    notify_block_id: UUID | None,
    *,
    deadline_hours: float = DEFAULT_DEADLINE_HOURS,
) -> list[AutomationCore]:
    """The automations of ``env`` (module docstring), as they should be."""
    prefix = f"replenish {env.name}"

    def deployment_of(specs: Sequence[DeploymentSpec]) -> list[dict[str, str | list[str]]]:
        names = sorted({d.name for d in specs})
        flows = sorted({d.flow for d in specs})
        return [
            {"prefect.resource.role": "deployment", "prefect.resource.name": names},
            {"prefect.resource.role": "flow", "prefect.resource.name": flows},
        ]

    def notify(subject: str, body: str) -> list[Any]:
        if notify_block_id is None:
            return [DoNothing()]
        return [SendNotification(block_document_id=notify_block_id, subject=subject, body=body)]

    out: list[AutomationCore] = []
    nightly = env.of_flow("nightly-replenishment")
    if nightly:
        hours = f"{deadline_hours:g} hour{'s' if deadline_hours != 1 else ''}"
        out.append(
            AutomationCore(
                name=f"{prefix}: nightly late",
                description=(
                    f"A nightly replenishment run has not completed {hours} after it started: "
                    "no plan, no draft order for today yet (deployments/setup.py)."
                ),
                trigger=EventTrigger(
                    match={"prefect.resource.id": "prefect.flow-run.*"},
                    match_related=deployment_of(nightly),
                    after={"prefect.flow-run.Running"},
                    expect={"prefect.flow-run.Completed"},
                    for_each={"prefect.resource.id"},
                    posture=Posture.Proactive,
                    threshold=1,
                    within=timedelta(hours=deadline_hours),
                ),
                actions=notify(
                    f"[replenish {env.name}] the nightly plan is late",
                    "The nightly replenishment run {{ flow_run.name }} started "
                    f"{hours} ago and has not "
                    "completed: no plan and no draft order for today yet. Open the run "
                    "in the Prefect UI ({{ flow_run|ui_url }}) and rerun the "
                    "deployment when the cause is fixed.",
                ),
            )
        )
    out.append(
        AutomationCore(
            name=f"{prefix}: run crashed",
            description=(
                "A replenish flow run crashed: its process died or the worker lost it, "
                "so the flow's own failure alerts could not be sent (deployments/setup.py)."
            ),
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=deployment_of(env.deployments),
                expect={"prefect.flow-run.Crashed"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=notify(
                f"[replenish {env.name}] a flow run crashed",
                "Flow run {{ flow_run.name }} of {{ deployment.name }} crashed: "
                "{{ flow_run.state.message }}. {{ flow_run|ui_url }}",
            ),
        )
    )
    sync = env.of_flow("intraday-sync")
    if sync:
        out.append(
            AutomationCore(
                name=f"{prefix}: sync failing",
                description=(
                    "The intraday sync failed 3 times within 4 hours: the demand cache and "
                    "the stock watch are going stale (deployments/setup.py)."
                ),
                trigger=EventTrigger(
                    match={"prefect.resource.id": "prefect.flow-run.*"},
                    match_related=deployment_of(sync),
                    expect={"prefect.flow-run.Failed"},
                    posture=Posture.Reactive,
                    threshold=3,
                    within=timedelta(hours=4),
                ),
                actions=notify(
                    f"[replenish {env.name}] the intraday sync keeps failing",
                    "The intraday sync failed 3 times within 4 hours; the last one: "
                    "{{ flow_run.name }} ({{ flow_run.state.message }}). {{ flow_run|ui_url }}",
                ),
            )
        )
    return out


def _definition(automation: AutomationCore) -> dict[str, Any]:
    """What makes two automations the same (the fields the set-up writes)."""
    return automation.model_dump(
        mode="json",
        include={"name", "description", "enabled", "trigger", "actions"},
    )


async def ensure_automation(client: PrefectClient, wanted: AutomationCore) -> tuple[str, UUID]:
    """Create ``wanted`` if no automation has its name, update the one that
    has it if its definition differs (same id), remove name duplicates.
    Returns (created/updated/unchanged, id)."""
    existing = await client.read_automations_by_name(wanted.name)
    if not existing:
        return "created", await client.create_automation(wanted)
    keep, *duplicates = sorted(existing, key=lambda a: str(a.id))
    for extra in duplicates:
        await client.delete_automation(extra.id)
    if _definition(keep) == _definition(wanted):
        return "unchanged", keep.id
    await client.update_automation(keep.id, wanted)
    return "updated", keep.id


# ------------------------------------------------------------------ set-up


async def asetup(
    prefect_file: str | Path = DEFAULT_PREFECT_FILE,
    *,
    notify_block: str | None = None,
    deadline_hours: float = DEFAULT_DEADLINE_HOURS,
    pool_concurrency: int | None = DEFAULT_POOL_CONCURRENCY,
) -> SetupReport:
    """Set up everything the deployments of ``prefect_file`` need (idempotent)."""
    if not deadline_hours > 0:
        raise SystemExit(f"error: --deadline-hours must be > 0, got {deadline_hours}")
    env = read_environment(prefect_file)
    report = SetupReport(environment=env.name)
    report.blocks, block_slug = await ensure_blocks()
    report.notify_block = notify_block or SetupSettings().notify_block or block_slug
    async with get_client() as client:
        for pool in env.work_pools:
            created = await ensure_work_pool(pool, pool_concurrency, client=client)
            report.work_pools[pool] = "created" if created else "exists"
        block_id = (
            await _notification_block_id(client, report.notify_block)
            if report.notify_block
            else None
        )
        for wanted in automations(env, block_id, deadline_hours=deadline_hours):
            status, automation_id = await ensure_automation(client, wanted)
            report.automations[wanted.name] = status
            report.automation_ids[wanted.name] = automation_id
    return report


def setup(
    prefect_file: str | Path = DEFAULT_PREFECT_FILE,
    *,
    notify_block: str | None = None,
    deadline_hours: float = DEFAULT_DEADLINE_HOURS,
    pool_concurrency: int | None = DEFAULT_POOL_CONCURRENCY,
) -> SetupReport:
    """:func:`asetup` for synchronous callers."""
    return asyncio.run(
        asetup(
            prefect_file,
            notify_block=notify_block,
            deadline_hours=deadline_hours,
            pool_concurrency=pool_concurrency,
        )
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.setup",
        description="Idempotent set-up of the work pool(s), blocks and automations "
        "of a prefect file (docs/deployment.md).",
    )
    parser.add_argument(
        "--prefect-file",
        default=str(DEFAULT_PREFECT_FILE),
        help="the file `prefect deploy --prefect-file` deploys (default: prefect.yaml)",
    )
    parser.add_argument(
        "--notify-block",
        default=None,
        metavar="TYPE/NAME",
        help="notification block the automations notify, e.g. custom-webhook/ops-alerts "
        "(default: REPLENISH_NOTIFY_BLOCK, else the Slack webhook block)",
    )
    parser.add_argument(
        "--deadline-hours",
        type=float,
        default=DEFAULT_DEADLINE_HOURS,
        help="hours a nightly run may take before the 'nightly late' automation fires",
    )
    parser.add_argument(
        "--pool-concurrency",
        type=int,
        default=DEFAULT_POOL_CONCURRENCY,
        help="concurrency limit of a work pool the set-up creates",
    )
    args = parser.parse_args(argv)
    report = setup(
        args.prefect_file,
        notify_block=args.notify_block,
        deadline_hours=args.deadline_hours,
        pool_concurrency=args.pool_concurrency,
    )
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
