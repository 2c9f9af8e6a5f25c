"""Record and publish: the run, plans, quarantine, draft orders and alerts."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
from prefect import get_run_logger, runtime, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput

from replenish.charts import sku_report_html, top_orders
from replenish.charts import subset_snapshot as snapshot_of_skus
from replenish.errors import ConfigurationError, DataQualityError
from replenish.kpis import Kpis, compute_kpis
from replenish.model import ErpSnapshot
from replenish.notify import Alert, LogNotifier, Notifier, SlackWebhookNotifier, send_all
from replenish.notify.channels import (
    ChannelSettings,
    UnavailableChannel,
    email_from_server,
    email_from_settings,
    slack_url,
)
from replenish.notify.dispatch import dispatch
from replenish.notify.lifecycle import AlertScope
from replenish.notify.rules import AlertRules, flow_alert
from replenish.notify.slack import webhook_client_poster
from replenish.orders import build_headers, build_lines, merge_partial, top_up_to_minimum
from replenish.orders.approval import (
    ApprovalForm,
    ApprovalOutcome,
    OrderDecision,
    apply_form,
    approval_markdown,
    auto_approve,
    initial_decisions,
    route,
)
from replenish.orders.push import PUSHABLE_STATUSES, PushUnavailable, push_orders
from replenish.report import (
    DATA_DOCS_KEY,
    DRAFTS_KEY,
    KPIS_KEY,
    SKU_REPORT_KEY,
    SUMMARY_KEY,
    draft_table_rows,
    run_summary_markdown,
)
from replenish.store import PublishResult, Store
from tasks.common import NO_CACHE_OPTIONS, settings
from tasks.plan import forecast


@contextmanager
def open_store() -> Iterator[Store]:
    """The store of the settings, disposed of when the step is done."""
    store = Store(settings().store())
    try:
        yield store
    finally:
        store.dispose()


@task(name="start-run", **NO_CACHE_OPTIONS)
def start_run(
    as_of: date, parameters: dict[str, Any], dry_run: bool, flow_run_id: str | None
) -> str:
    with open_store() as store:
        return store.start_run(
            as_of,
            erp=settings().erp(),
            parameters=parameters,
            dry_run=dry_run,
            flow_run_id=flow_run_id,
        )


@task(name="finish-run", **NO_CACHE_OPTIONS)
def finish_run(run_id: str, status: str, counts: dict[str, Any], message: str | None) -> None:
    with open_store() as store:
        store.finish_run(run_id, status, counts=counts, message=message)


@task(name="store-quarantine", **NO_CACHE_OPTIONS)
def store_quarantine(run_id: str, quarantine: pd.DataFrame) -> int:
    with open_store() as store:
        return store.save_quarantine(run_id, quarantine)


@task(name="store-plans", **NO_CACHE_OPTIONS)
def store_plans(run_id: str, plans: pd.DataFrame) -> int:
    with open_store() as store:
        return store.save_plans(run_id, plans)


@task(name="publish-drafts", **NO_CACHE_OPTIONS)
def publish_drafts(
    run_id: str,
    as_of: date,
    plans: pd.DataFrame,
    snapshot: ErpSnapshot,
    skus: Sequence[str] | None = None,
) -> PublishResult:
    """Draft POs per supplier × location, stored idempotently for ``as_of``.

    A run limited to ``skus`` replaces the draft lines of those SKUs only and
    keeps the other lines of the same drafts. A draft below its supplier's
    minimum order value is topped up, most urgent line first, within caps.
    Unapproved drafts of earlier dates are superseded where this plan
    covered their SKU × location (docs/publishing.md).
    """
    lines = build_lines(plans, as_of)
    covered = zip(plans["sku"].astype(str), plans["location_id"].astype(str), strict=True)
    with open_store() as store:
        if skus:
            lines = merge_partial(store.orders(as_of=as_of), lines, set(skus))
        lines, topups = top_up_to_minimum(lines, plans, snapshot.suppliers)
        headers = build_headers(lines, snapshot.suppliers, topups)
        result = store.publish_drafts(as_of, run_id, headers, lines, covered=covered)
    if result.superseded or result.trimmed:
        get_run_logger().info(
            "superseded %d unapproved draft(s) of earlier dates (%s); %d line(s) taken out of "
            "others",
            len(result.superseded),
            ", ".join(result.superseded),
            len(result.trimmed),
        )
    return result


# ---- alerts (docs/alerts.md) ------------------------------------------------------------


def _slack_via_prefect(block: Any, origin: str) -> Notifier:
    """A Slack channel posting through ``prefect_slack``'s webhook client."""
    url = block.url.get_secret_value().strip()
    try:
        poster = webhook_client_poster(block.get_client(sync_client=True))
        return SlackWebhookNotifier(url, poster=poster)
    except ConfigurationError as e:
        return UnavailableChannel("slack", f"{origin}: {e}")


def _slack_channel(block_name: str | None, env_url: str | None) -> Notifier | None:
    from prefect_slack import SlackWebhook

    if block_name:
        try:
            block = SlackWebhook.load(block_name)
        except Exception as e:  # not found, server down, wrong block type
            return UnavailableChannel(
                "slack",
                f"the Slack Incoming Webhook block {block_name!r} (REPLENISH_SLACK_BLOCK) "
                f"cannot be loaded: {type(e).__name__}: {str(e)[:200]}",
            )
        return _slack_via_prefect(block, f"Slack block {block_name!r}")
    if env_url:
        return _slack_via_prefect(SlackWebhook(url=env_url), "REPLENISH_SLACK_WEBHOOK_URL")
    return None


def _email_channel(block_name: str | None, logger: Any) -> Notifier | None:
    from prefect_email import EmailServerCredentials

    if not block_name:
        return email_from_settings(settings(), logger)
    try:
        block = EmailServerCredentials.load(block_name)
    except Exception as e:
        return UnavailableChannel(
            "email",
            f"the Email Server Credentials block {block_name!r} (REPLENISH_EMAIL_BLOCK) "
            f"cannot be loaded: {type(e).__name__}: {str(e)[:200]}",
        )
    server, kind = block.smtp_server, block.smtp_type
    try:
        return email_from_server(
            host=str(getattr(server, "value", server)),
            smtp_type=str(getattr(kind, "name", kind)),
            port=block.smtp_port,
            username=block.username,
            password=block.password.get_secret_value(),
            verify=block.verify is not False,
            settings=settings(),
            logger=logger,
            block=f"email block {block_name!r}",
        )
    except ConfigurationError as e:
        return UnavailableChannel("email", str(e))


def alert_channels(logger: Any) -> list[Notifier]:
    """The run log, then Slack and email (docs/alerts.md, "Channels").

    Slack: the ``prefect_slack`` *Slack Incoming Webhook* block named by
    ``REPLENISH_SLACK_BLOCK``, else ``REPLENISH_SLACK_WEBHOOK_URL`` (wrapped in
    an unsaved block); either way the message leaves through
    ``prefect_slack``'s client. Email: the ``prefect_email`` *Email Server
    Credentials* block named by ``REPLENISH_EMAIL_BLOCK``, else the
    ``REPLENISH_SMTP_*`` settings; recipients from ``REPLENISH_ALERT_EMAIL_TO``.
    A named block that cannot be loaded is a channel that fails (reported,
    notices kept for the next run), never a silent fallback.
    """
    names = ChannelSettings()
    channels: list[Notifier] = [LogNotifier(logger)]
    slack = _slack_channel(names.slack_block, slack_url(settings()))
    email = _email_channel(names.email_block, logger)
    channels += [channel for channel in (slack, email) if channel is not None]
    return channels


@task(name="send-alerts", **NO_CACHE_OPTIONS)
def send_alerts(
    run_id: str,
    as_of: date,
    alerts: Sequence[Alert],
    heading: str,
    scopes: Sequence[AlertScope] = (),
    digest: bool = True,
    rules: AlertRules | None = None,
) -> dict[str, Any]:
    """Announce what changed since the last runs: new alerts, alerts that
    worsened, resolutions of the open alerts ``scopes`` cover that this run did
    not raise (docs/alerts.md). A rerun announces nothing twice.

    ``digest``: one message per channel grouping the notices, else one per
    notice. A channel that fails is reported in the result (and the log)
    without stopping the others; if every remote channel failed, the notices
    are kept for the next run. Returns :class:`~replenish.notify.dispatch.DeliveryReport`
    as a dict.
    """
    logger = get_run_logger()
    with open_store() as store:
        report = dispatch(
            store,
            alert_channels(logger),
            as_of,
            run_id,
            alerts,
            heading=heading,
            scopes=scopes,
            rules=rules,
            digest=digest,
            logger=logger,
        )
    return report.to_dict()


def _as_of_parameter(value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            pass
    return date.today()


def notify_flow_state(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow state hook (``on_failure``, ``on_crashed``): a critical
    ``flow_failed`` / ``flow_crashed`` alert on every channel.

    One open alert per flow: a retry or a second call for the same flow run
    announces nothing; the next failed run is re-announced ("N runs in a
    row"); the flow's next completed run announces the resolution. A run
    stopped by the validation gate is not announced here (its
    ``data_gate_stopped`` alert says why). Without a reachable store the
    alert is sent anyway, without de-duplication. Never raises: a hook must
    not hide the run's own failure.
    """
    from prefect.logging.loggers import flow_run_logger

    logger = flow_run_logger(flow_run, flow)
    try:
        _notify_flow_state(flow, flow_run, state, logger)
    except Exception as e:
        logger.error("the flow state alert could not be sent: %s: %s", type(e).__name__, e)


def _notify_flow_state(flow: Any, flow_run: Any, state: Any, logger: Any) -> None:
    crashed = bool(state.is_crashed())
    if not crashed:
        error = state.result(raise_on_failure=False)
        if isinstance(error, DataQualityError):
            logger.info("validation gate stop: announced as data_gate_stopped, not as a failure")
            return
    as_of = _as_of_parameter((flow_run.parameters or {}).get("as_of"))
    flow_run_id = str(flow_run.id)
    kind = "flow_crashed" if crashed else "flow_failed"
    failures = 1
    try:
        store: Store | None = Store(settings().store())
    except Exception as e:
        logger.warning("store unavailable (%s): the flow alert is sent without de-duplication", e)
        store = None
    try:
        if store is not None:
            previous = store.open_alerts([kind])
            previous = previous[previous["ref"] == flow.name]
            if not previous.empty:
                details = previous.iloc[-1]["details"] or {}
                if details.get("flow_run_id") == flow_run_id:
                    return  # this run was announced already
                failures = int(details.get("failures") or 1) + 1
        alert = flow_alert(
            flow.name,
            crashed=crashed,
            flow_run_id=flow_run_id,
            flow_run_name=str(flow_run.name),
            state_name=str(state.name),
            message=str(state.message or ""),
            failures=failures,
        )
        heading = f"replenish {as_of.isoformat()}: flow {flow.name}"
        channels = alert_channels(logger)
        if store is None:
            failed = send_all(channels, [alert], heading=heading)
            for name, error in failed.items():
                logger.error("alert channel %s failed: %s", name, error)
            return
        dispatch(store, channels, as_of, flow_run_id, [alert], heading=heading, logger=logger)
    finally:
        if store is not None:
            store.dispose()


# ---- approval, push and the run's artifacts (docs/publishing.md, docs/kpis.md) --------

#: How often a paused run asks Prefect whether it was resumed (seconds).
APPROVAL_POLL_SECONDS = 2
#: Prefect keeps a paused run resumable this much longer than the approval
#: timeout, so the run's own timeout (which leaves the orders drafts and
#: goes on) always comes first.
APPROVAL_GRACE_SECONDS = 120
#: Who "resumes" a run whose approval timed out (never recorded as a decision).
TIMEOUT_APPROVER = "replenish (approval timed out)"
#: Waits between the retries of a push the ERP could not take (PushUnavailable).
PUSH_RETRY_DELAYS: list[float] = [30.0, 120.0, 600.0]
#: Folder of the per-SKU HTML reports, under the settings' home (REPLENISH_HOME).
REPORTS_FOLDER = "reports"


class ApprovalInput(RunInput, ApprovalForm):
    """The approval form of a paused run (Prefect renders it from this model)."""


@dataclass(frozen=True)
class ApprovalRequest:
    """What :func:`route_approvals` leaves for a person: the orders above the
    threshold, the form's description and its prefilled entries."""

    waiting: list[str]
    auto: list[str]
    left: list[str]
    description: str
    initial: list[OrderDecision]


@task(name="route-approvals", **NO_CACHE_OPTIONS)
def route_approvals(
    run_id: str, as_of: date, threshold: float | None, auto_approve_below: bool
) -> ApprovalRequest:
    """Split the date's drafts: above ``threshold`` they wait for a person;
    at or below it they are approved as ``auto`` when ``auto_approve_below``."""
    with open_store() as store:
        headers = store.drafts(as_of=as_of, statuses=["draft"])
        routing = route(headers, threshold, auto_approve_below)
        auto_approve(store, routing.auto, run_id)
        lines = store.orders(as_of=as_of, po_keys=routing.needs_approval)
    get_run_logger().info(
        "approval: %d order(s) wait for a person, %d auto-approved, %d left as drafts",
        len(routing.needs_approval),
        len(routing.auto),
        len(routing.left),
    )
    return ApprovalRequest(
        waiting=routing.needs_approval,
        auto=routing.auto,
        left=routing.left,
        description=approval_markdown(headers, lines, routing.needs_approval, threshold),
        initial=initial_decisions(lines, routing.needs_approval),
    )


def _resume_on_timeout(
    flow_run_id: UUID, seconds: float, done: threading.Event, fired: threading.Event
) -> None:
    """Resume the paused run with an empty form (every order held) once
    ``seconds`` have passed without an answer."""
    if done.wait(seconds):
        return
    form = ApprovalForm(approver=TIMEOUT_APPROVER, orders=[], note="approval timed out")
    try:
        resume_flow_run(flow_run_id, run_input=form.model_dump(mode="json"))
    except Exception:  # answered meanwhile (not paused any more), or the API is gone
        return
    fired.set()


def wait_for_approval(request: ApprovalRequest, timeout: int) -> ApprovalForm | None:
    """Pause the flow run until a person submits the approval form in the
    Prefect UI (or ``send_input``/``resume_flow_run``); None when nobody did
    within ``timeout`` seconds: the orders then stay drafts.

    Called from the flow (a pause belongs to the flow run, not to a task).
    """
    flow_run_id = runtime.flow_run.id
    if not flow_run_id:
        raise RuntimeError("wait_for_approval needs a flow run")
    form_type = ApprovalInput.with_initial_data(
        description=request.description, orders=request.initial
    )
    done, fired = threading.Event(), threading.Event()
    watchdog = threading.Thread(
        target=contextvars.copy_context().run,
        args=(_resume_on_timeout, UUID(str(flow_run_id)), timeout, done, fired),
        name="approval-timeout",
        daemon=True,
    )
    watchdog.start()
    try:
        answer = pause_flow_run(
            wait_for_input=form_type,
            timeout=timeout + APPROVAL_GRACE_SECONDS,
            poll_interval=APPROVAL_POLL_SECONDS,
            key=f"approval-{flow_run_id}",
        )
    finally:
        done.set()
    watchdog.join()
    if fired.is_set():
        return None
    return ApprovalForm.model_validate(answer.model_dump(include=set(ApprovalForm.model_fields)))


@task(name="record-decisions", **NO_CACHE_OPTIONS)
def record_decisions(
    run_id: str, request: ApprovalRequest, form: ApprovalForm | None
) -> ApprovalOutcome:
    """Record the approver's decisions (None: the approval timed out, every
    waiting order stays a draft)."""
    logger = get_run_logger()
    if form is None:
        outcome = ApprovalOutcome(held=list(request.waiting), timed_out=True)
    else:
        with open_store() as store:
            outcome = apply_form(store, form, request.waiting, run_id=run_id)
    outcome.auto = list(request.auto)
    logger.info(outcome.text())
    for key, why in outcome.failed.items():
        logger.warning("order %s not decided: %s", key, why)
    return outcome


def run_approval(
    run_id: str,
    as_of: date,
    threshold: float | None,
    auto_approve_below: bool,
    timeout: int,
) -> ApprovalOutcome:
    """The approval step of the flow: auto-approve below the threshold, pause
    for the orders above it, record what the approver decided."""
    request = route_approvals(run_id, as_of, threshold, auto_approve_below)
    if not request.waiting:
        return ApprovalOutcome(auto=list(request.auto))
    return record_decisions(run_id, request, wait_for_approval(request, timeout))


def retry_if_push_unavailable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a push only when the ERP could not be reached (PushUnavailable):
    pushing is idempotent, so a retry redoes nothing twice. A refusal
    (credentials, configuration, protocol) is not retried."""
    try:
        state.result()
    except PushUnavailable:
        return True
    except Exception:
        return False
    return False


@task(
    name="push-orders",
    retries=len(PUSH_RETRY_DELAYS),
    retry_delay_seconds=PUSH_RETRY_DELAYS,
    retry_condition_fn=retry_if_push_unavailable,
    **NO_CACHE_OPTIONS,
)
def push_approved(run_id: str, as_of: date, target: str) -> dict[str, Any]:
    """Push the approved drafts of ``as_of`` to ``target`` (odoo, erpnext) and
    record on each draft what happened (the ERP's id and reference, the
    action, why). An order the ERP refused is reported (and logged), the
    others are pushed; an unreachable ERP raises PushUnavailable (retried)."""
    logger = get_run_logger()
    with open_store() as store:
        # drafts too: the report lists them as held (not approved); rejected and
        # superseded orders are no business of the ERP
        orders = store.orders(as_of=as_of, statuses=["draft", *PUSHABLE_STATUSES])
        try:
            report = push_orders(target, orders, plans=store.plans(run_id))
        except PushUnavailable as e:
            if e.report is not None:
                store.record_push(e.report.to_frame())
            raise
        store.record_push(report.to_frame())
    logger.info(report.text())
    for outcome in report.outcomes:
        if outcome.action == "failed":
            logger.warning("order %s not pushed to %s: %s", outcome.po_key, target, outcome.reason)
    return {
        "target": target,
        **report.counts(),
        "failed_orders": {k: report.outcome(k).reason for k in report.failed},
    }


@task(name="kpis", **NO_CACHE_OPTIONS)
def run_kpis(run_id: str, snapshot: ErpSnapshot, plans: pd.DataFrame, as_of: date) -> Kpis | None:
    """The run's KPIs (docs/kpis.md), kept in the store with the run. A
    failure is logged and leaves the run without KPIs: never a reason to
    stop ordering."""
    try:
        kpis = compute_kpis(snapshot, plans, as_of)
        with open_store() as store:
            store.save_kpis(run_id, kpis.to_dict())
    except Exception as e:
        get_run_logger().warning("KPIs of run %s not computed: %s: %s", run_id, type(e).__name__, e)
        return None
    return kpis


@task(name="sku-report", **NO_CACHE_OPTIONS)
def write_sku_report(
    run_id: str,
    snapshot: ErpSnapshot,
    plans: pd.DataFrame,
    as_of: date,
    history_days: int,
    top_n: int,
) -> Path | None:
    """The per-SKU pictures of the ``top_n`` largest proposed orders as one
    HTML page, ``<REPLENISH_HOME>/reports/<run_id>.html`` (docs/kpis.md).
    The daily forecast drawn is computed again for those SKUs only, by the
    flow's own forecast step on the same data. None when there is nothing to
    draw or the page could not be written (logged: a report is never a
    reason to stop ordering)."""
    chosen = top_orders(plans, top_n) if top_n > 0 else []
    if not chosen:
        return None
    path = (settings().home / REPORTS_FOLDER / f"{run_id}.html").resolve()
    try:
        shown = snapshot_of_skus(snapshot, {sku for sku, _ in chosen})
        demand = forecast.fn(shown, as_of, history_days)
        page = sku_report_html(shown, plans, demand, as_of, series=chosen)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except Exception as e:
        get_run_logger().warning(
            "per-SKU report of run %s not written to %s: %s: %s", run_id, path, type(e).__name__, e
        )
        return None
    return path


def publish_artifacts(
    run_id: str,
    as_of: date,
    summary: dict[str, Any],
    plans: pd.DataFrame,
    alerts: Sequence[Alert],
    kpis: Kpis | None,
    data_docs: Path | None,
    report: Path | None,
) -> list[str]:
    """The run's Prefect artifacts: the Markdown summary, the table of draft
    orders, the KPI table, and links to the Data Docs and the per-SKU
    report. Returns their keys.

    Called from the flow itself, not as a task, so the artifacts belong to
    the flow run (the UI's flow-run page lists them under Artifacts → Flow
    run) and are published after the run's last task."""
    with open_store() as store:
        headers = None if summary.get("dry_run") else store.drafts(as_of=as_of)
        lines = None if headers is None else store.orders(as_of=as_of)
    links = {"data_docs": data_docs, "sku_report": report}
    markdown = run_summary_markdown(
        summary, plans, alerts, lines, headers=headers, links=links, kpis=kpis
    )
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown=markdown,
        description=f"Replenishment run {run_id} for {as_of.isoformat()}",
    )
    keys = [SUMMARY_KEY]
    if headers is not None:
        create_table_artifact(
            key=DRAFTS_KEY,
            table=draft_table_rows(headers),
            description=f"Draft purchase orders of {as_of.isoformat()} (run {run_id})",
        )
        keys.append(DRAFTS_KEY)
    if kpis is not None:
        create_table_artifact(
            key=KPIS_KEY,
            table=kpis.table_rows(),
            description=f"KPIs over the {kpis.window_days} days before {as_of.isoformat()}",
        )
        keys.append(KPIS_KEY)
    if data_docs is not None:
        create_link_artifact(
            key=DATA_DOCS_KEY,
            link=data_docs.resolve().as_uri(),
            link_text=f"Data Docs of run {run_id}",
            description="Great Expectations validation results of the run's input",
        )
        keys.append(DATA_DOCS_KEY)
    if report is not None:
        create_link_artifact(
            key=SKU_REPORT_KEY,
            link=report.resolve().as_uri(),
            link_text=f"Per-SKU pictures of run {run_id}",
            description="History, forecast, safety stock and reorder point, projected stock "
            "of the largest proposed orders",
        )
        keys.append(SKU_REPORT_KEY)
    return keys
