"""The deployments as a user deploys them: `python -m deployments.setup` and
`prefect deploy --all [--prefect-file ...]` as commands, against the
session's Prefect server (a real server process with its own SQLite database,
its event services running the automations).

Checks what the Prefect UI then shows: the deployments with their work pool,
schedules, parameter form (types and descriptions) and concurrency limit;
the set-up's work pools and automations, the same objects when it is rerun;
and the crash automation notifying through a webhook block on loopback.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Crashed, Pending, Running

from deployments.setup import asetup
from tests.servers import HttpRecorder

pytestmark = [pytest.mark.flow, pytest.mark.slow]

REPO = Path(__file__).parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


class Api:
    """The session's Prefect server (tests/conftest.py ``prefect_server``: a real
    server process, its own SQLite database) and the environment of a command
    that talks to it."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        keep = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.env = {
            **keep,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "GX_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(args), env=self.env, cwd=REPO, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def run_all(self, *commands: list[str]) -> None:
        """Run ``commands`` at the same time; each must succeed."""
        running = [
            subprocess.Popen(
                c,
                env=self.env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for c in commands
        ]
        for process in running:
            out, _ = process.communicate(timeout=180)
            assert process.returncode == 0, out


@pytest.fixture(scope="module")
def server(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Api:
    return Api(PREFECT_API_URL.value(), tmp_path_factory.mktemp("prefect-home"))


def on(server: Api, coro: Any) -> Any:
    """Run ``coro`` with the in-process client pointed at ``server``."""
    with temporary_settings({PREFECT_API_URL: server.url}):
        return asyncio.run(coro)


@pytest.fixture(scope="module")
def deployed(server: Api) -> dict[str, Any]:
    """Set-up, then `prefect deploy --all` of production and of staging."""
    # the set-up from the command line, as `make deploy` runs it; both files deployed
    # side by side (each `prefect deploy` spends seconds importing the flows)
    server.run(sys.executable, "-m", "deployments.setup")
    on(server, asetup(REPO / "prefect.staging.yaml"))
    server.run_all(
        [PREFECT, "--no-prompt", "deploy", "--all"],
        [PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "prefect.staging.yaml"],
    )

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            deployments = {d.name: d for d in await client.read_deployments()}
            flows = {f.id: f.name for f in await client.read_flows()}
            return {"deployments": deployments, "flows": flows}

    return on(server, read())


PRODUCTION = {
    # deployment: (flow, cron, collision strategy, parameters)
    "nightly": ("nightly-replenishment", "30 2 * * *", "ENQUEUE"),
    "intraday-sync": ("intraday-sync", "5 * * * *", "CANCEL_NEW"),
    "weekly-backtest": ("weekly-backtest", "0 6 * * 1", "ENQUEUE"),
}
STAGING = {
    "staging-nightly": ("nightly-replenishment", "30 5 * * *", "ENQUEUE"),
    "staging-intraday-sync": ("intraday-sync", "15 */4 * * *", "CANCEL_NEW"),
    "staging-weekly-backtest": ("weekly-backtest", "0 7 * * 6", "ENQUEUE"),
}


def test_production_and_staging_deployments_are_scheduled_with_a_form_and_a_limit(
    deployed: dict[str, Any],
) -> None:
    deployments, flows = deployed["deployments"], deployed["flows"]
    assert set(deployments) >= set(PRODUCTION) | set(STAGING)
    for name, (flow, cron, collision) in {**PRODUCTION, **STAGING}.items():
        d = deployments[name]
        assert flows[d.flow_id] == flow, name
        assert d.work_pool_name == ("replenish-staging" if name in STAGING else "replenish-process")
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in d.schedules] == [
            (cron, "Europe/Berlin", True)
        ], name
        assert d.global_concurrency_limit is not None and d.global_concurrency_limit.limit == 1
        assert d.concurrency_options.collision_strategy.value == collision, name
        # the UI's form: every parameter typed and described
        properties = d.parameter_openapi_schema["properties"]
        assert properties, name
        for param, spec in properties.items():
            assert spec.get("description"), (name, param)
            assert "type" in spec or "anyOf" in spec, (name, param)
        assert set(d.parameters) <= set(properties), name

    nightly = deployments["nightly"]
    assert nightly.parameters["service_levels"] == {"A": 0.98, "B": 0.95, "C": 0.90}
    assert nightly.parameters["dry_run"] is False
    assert deployments["staging-nightly"].parameters["dry_run"] is True
    schema = nightly.parameter_openapi_schema["properties"]
    assert schema["history_days"]["type"] == "integer"
    assert schema["as_of"]["anyOf"][0] == {"format": "date", "type": "string"}
    backtest = deployments["weekly-backtest"].parameter_openapi_schema["properties"]
    assert backtest["days"]["minimum"] == 7 and backtest["tolerance"]["type"] == "number"
    assert deployments["intraday-sync"].parameters["channels"] == []
    assert deployments["staging-intraday-sync"].job_variables == {
        "env": {"REPLENISH_HOME": "replenish-staging-data"}
    }
    # the worker runs the flows from the repository
    assert nightly.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
    ]


def test_setup_is_idempotent(server: Api, deployed: dict[str, Any]) -> None:
    async def snapshot() -> dict[str, Any]:
        async with get_client() as client:
            pools = {p.name: p.id for p in await client.read_work_pools()}
            automations = sorted((a.name, a.id) for a in await client.read_automations())
            return {"pools": pools, "automations": automations}

    before = on(server, snapshot())
    assert {"replenish-process", "replenish-staging"} <= set(before["pools"])
    names = [n for n, _ in before["automations"]]
    assert names == sorted(
        f"replenish {env}: {what}"
        for env in ("production", "staging")
        for what in ("nightly late", "run crashed", "sync failing")
    )
    again = on(server, asetup())
    assert set(again.automations.values()) == {"unchanged"}
    assert set(again.work_pools.values()) == {"exists"}
    assert on(server, snapshot()) == before


def test_the_crash_automation_notifies_through_the_slack_block(
    server: Api, deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with HttpRecorder() as slack:
        monkeypatch.setenv("REPLENISH_SLACK_WEBHOOK_URL", slack.url + "/services/T0/B0/XX")

        async def crash_a_run() -> dict[str, Any]:
            report = await asetup(deadline_hours=3)
            async with get_client() as client:
                d = await client.read_deployment_by_name("intraday-sync/intraday-sync")
                run = await client.create_flow_run_from_deployment(d.id)
                for state in (Pending(), Running(), Crashed(message="worker lost the process")):
                    await client.set_flow_run_state(run.id, state, force=True)
            return {"report": report, "run": run}

        done = on(server, crash_a_run())
        report = done["report"]
        # the Slack block was made from the environment; every automation now
        # notifies through it (updated in place: same ids)
        assert report.blocks["slack replenish-slack"] == "created"
        assert report.notify_block == "slack-incoming-webhook/replenish-slack"
        assert set(report.automations.values()) == {"updated"}
        deadline = time.monotonic() + 30
        while not slack.requests and time.monotonic() < deadline:
            time.sleep(0.25)
        assert len(slack.requests) == 1, "the crash automation did not notify"
        request = slack.requests[0]
    assert request.path == "/services/T0/B0/XX"
    text = request.json["text"]
    assert text.startswith("[replenish production] a flow run crashed")
    assert done["run"].name in text and "worker lost the process" in text


def test_setup_names_a_missing_notification_block(server: Api) -> None:
    with pytest.raises(SystemExit, match=r"custom-webhook/nope.*not found"):
        on(server, asetup(notify_block="custom-webhook/nope"))
