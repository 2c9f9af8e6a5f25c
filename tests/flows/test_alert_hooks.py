"""Alerts under a real Prefect server: channels from Prefect blocks
(``prefect_slack``'s SlackWebhook, ``prefect_email``'s EmailServerCredentials),
created idempotently by ``deployments/blocks.py``, and the flow state hooks:
a nightly run that fails or crashes sends a critical alert, the next completed
run announces its resolution. Peers: a real SMTP server (aiosmtpd) and a
Slack-speaking HTTP recorder on loopback."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from deployments.blocks import ensure_notification_blocks
from flows.nightly import FLOW_NAME, nightly_replenishment
from replenish.demo import generate_demo
from replenish.errors import ContractError
from replenish.notify import send_all
from replenish.notify.channels import ChannelSettings, UnavailableChannel
from replenish.notify.rules import flow_alert
from replenish.settings import Settings
from replenish.sources.generic import write_snapshot
from replenish.store import Store
from tasks.publish import alert_channels, notify_flow_state
from tests.servers import HttpRecorder, SmtpRecorder

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

AS_OF = date(2026, 11, 20)
HOOK = "/services/T000/B000/flowHookS3cr3t"
LOGGER = logging.getLogger("replenish.test.hooks")
CHANNEL_ENV = (
    "SLACK_WEBHOOK_URL",
    "SLACK_BLOCK",
    "EMAIL_BLOCK",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_STARTTLS",
)


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SmtpRecorder, HttpRecorder]]:
    for name in CHANNEL_ENV:
        monkeypatch.delenv(f"REPLENISH_{name}", raising=False)
    with SmtpRecorder() as smtp, HttpRecorder() as slack:
        monkeypatch.setenv("REPLENISH_ALERT_EMAIL_TO", '["buyer@shop.example"]')
        monkeypatch.setenv("REPLENISH_ALERT_EMAIL_FROM", "replenish@shop.example")
        yield smtp, slack


def _env_channels(monkeypatch: pytest.MonkeyPatch, smtp: SmtpRecorder, slack: HttpRecorder) -> None:
    monkeypatch.setenv("REPLENISH_SLACK_WEBHOOK_URL", slack.url + HOOK)
    monkeypatch.setenv("REPLENISH_SMTP_HOST", smtp.host)
    monkeypatch.setenv("REPLENISH_SMTP_PORT", str(smtp.port))


def _sections(payload: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]


# =========================================================================== blocks


def test_blocks_are_created_once_and_carry_the_alerts(
    peers: tuple[SmtpRecorder, HttpRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp, slack = peers
    _env_channels(monkeypatch, smtp, slack)
    suffix = uuid.uuid4().hex[:8]
    names = ChannelSettings(slack_block=f"slack-{suffix}", email_block=f"email-{suffix}")
    keys = (f"slack slack-{suffix}", f"email email-{suffix}")

    first = asyncio.run(ensure_notification_blocks(Settings(), names))
    again = asyncio.run(ensure_notification_blocks(Settings(), names))
    assert first == dict.fromkeys(keys, "created")
    assert again == dict.fromkeys(keys, "unchanged")
    monkeypatch.setenv("REPLENISH_SMTP_USERNAME", "bot")
    changed = asyncio.run(ensure_notification_blocks(Settings(), names))
    assert changed == {keys[0]: "unchanged", keys[1]: "updated"}
    monkeypatch.delenv("REPLENISH_SMTP_USERNAME")
    asyncio.run(ensure_notification_blocks(Settings(), names))

    # only the blocks know the peers now
    for name in ("SLACK_WEBHOOK_URL", "SMTP_HOST", "SMTP_PORT"):
        monkeypatch.delenv(f"REPLENISH_{name}")
    monkeypatch.setenv("REPLENISH_SLACK_BLOCK", f"slack-{suffix}")
    monkeypatch.setenv("REPLENISH_EMAIL_BLOCK", f"email-{suffix}")
    channels = alert_channels(LOGGER)
    assert [c.name for c in channels] == ["log", "slack", "email"]
    alert = flow_alert(
        "demo",
        crashed=False,
        flow_run_id="f-1",
        flow_run_name="brave-fox",
        state_name="Failed",
        message="boom",
    )
    assert send_all(channels, [alert], heading="replenish 2026-11-20") == {}
    (request,) = slack.requests
    assert request.path == HOOK and request.json["blocks"][0]["type"] == "header"
    assert "Flow demo failed: run brave-fox" in _sections(request.json)[1]
    (mail,) = smtp.wait_for(1)
    assert (
        mail["Subject"]
        == "[replenish] critical: Flow demo failed: run brave-fox — replenish 2026-11-20"
    )
    assert mail.rcpt_tos == ["buyer@shop.example"]


def test_a_block_that_does_not_load_is_a_failing_channel(
    peers: tuple[SmtpRecorder, HttpRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp, slack = peers
    _env_channels(monkeypatch, smtp, slack)  # a named block wins over the environment
    monkeypatch.setenv("REPLENISH_SLACK_BLOCK", "no-such-block")
    channels = alert_channels(LOGGER)
    slack_channel = channels[1]
    assert isinstance(slack_channel, UnavailableChannel)
    assert "'no-such-block' (REPLENISH_SLACK_BLOCK) cannot be loaded" in slack_channel.reason
    alert = flow_alert(
        "demo", crashed=True, flow_run_id="f", flow_run_name="r", state_name="Crashed", message=""
    )
    failures = send_all(channels, [alert], heading="h")
    assert list(failures) == ["slack"] and slack.requests == []
    assert len(smtp.wait_for(1)) == 1  # the environment's email still works


# =========================================================================== state hooks


@pytest.fixture(scope="module")
def demo_snapshot():  # type: ignore[no-untyped-def]
    return generate_demo(AS_OF, seed=5, n_skus=30, days=200)


def _flow_run(flow_run_id: str) -> Any:
    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(uuid.UUID(flow_run_id))

    return asyncio.run(read())


def test_a_failed_run_alerts_once_and_the_next_good_run_resolves_it(
    tmp_path: Path,
    peers: tuple[SmtpRecorder, HttpRecorder],
    monkeypatch: pytest.MonkeyPatch,
    demo_snapshot: Any,
) -> None:
    smtp, slack = peers
    _env_channels(monkeypatch, smtp, slack)
    db = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    with sqlite3.connect(tmp_path / "empty.db") as conn:  # an ERP without the contract's tables
        conn.execute("CREATE TABLE unrelated (id INTEGER)")
    broken = f"sqlite:///{(tmp_path / 'empty.db').as_posix()}"
    monkeypatch.setenv("REPLENISH_DB_URL", db)
    monkeypatch.setenv("REPLENISH_ERP_URL", broken)

    with pytest.raises(ContractError):
        nightly_replenishment(as_of=AS_OF, report_top_n=0)
    (request,) = slack.requests
    (mail,) = smtp.wait_for(1)
    assert "1 critical" in request.json["text"]
    alert_text = _sections(request.json)[1]
    assert alert_text.startswith(f":red_circle: *CRITICAL* · *Flow {FLOW_NAME} failed: run ")
    assert "ContractError" in alert_text and f"ref `{FLOW_NAME}`" in alert_text
    assert mail["Subject"].startswith(f"[replenish] critical: Flow {FLOW_NAME} failed: run ")
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "ContractError" in text and "flow_run_id=" in text

    store = Store(db)
    (opened,) = store.open_alerts(["flow_failed"]).to_dict("records")
    flow_run = _flow_run(opened["details"]["flow_run_id"])
    assert flow_run.state.is_failed()
    # the hook again for the same run (a second trigger): nothing new
    notify_flow_state(nightly_replenishment, flow_run, flow_run.state)
    assert len(slack.requests) == 1 and len(smtp.messages) == 1

    # the next run fails too: announced again, counted
    with pytest.raises(ContractError):
        nightly_replenishment(as_of=AS_OF, report_top_n=0)
    assert len(slack.requests) == 2
    second = _sections(slack.requests[1].json)[1]
    assert "_worse_" in second and "(2 runs in a row)" in second

    # the ERP is back: the run completes and announces the resolution, once
    good = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    write_snapshot(demo_snapshot, good)
    monkeypatch.setenv("REPLENISH_ERP_URL", good)
    summary = nightly_replenishment(as_of=AS_OF, report_top_n=0)
    assert summary["delivery"]["resolved"] == 1 and summary["delivery"]["new"] > 0
    digest = slack.requests[2].json
    resolved = [s for s in _sections(digest) if "*RESOLVED*" in s]
    assert len(resolved) == 1 and f"Resolved: Flow {FLOW_NAME} failed" in resolved[0]
    assert "1 resolved" in digest["text"]
    assert store.open_alerts(["flow_failed"]).empty
    resolved_state = store.alert_states(AS_OF, status="resolved")
    assert list(resolved_state["kind"]) == ["flow_failed"]
    store.dispose()


class Killed(BaseException):
    """Not an Exception: Prefect reports the run as crashed."""


@flow(name="alerts-crash-test", on_crashed=[notify_flow_state])
def crashing_flow(as_of: date = AS_OF) -> None:
    raise Killed("the worker process went away")


def test_a_crashed_run_sends_a_critical_alert(
    tmp_path: Path, peers: tuple[SmtpRecorder, HttpRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp, slack = peers
    _env_channels(monkeypatch, smtp, slack)
    monkeypatch.setenv("REPLENISH_DB_URL", f"sqlite:///{(tmp_path / 'store.db').as_posix()}")
    with pytest.raises(Killed):
        crashing_flow()
    (request,) = slack.requests
    text = _sections(request.json)[1]
    assert "*CRITICAL* · *Flow alerts-crash-test crashed: run " in text
    assert "Killed: the worker process went away" in text
    (mail,) = smtp.wait_for(1)
    assert "critical: Flow alerts-crash-test crashed" in mail["Subject"]
    assert "replenish 2026-11-20" in mail["Subject"]
