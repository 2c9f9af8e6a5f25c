"""Alerts across runs, end to end without Prefect: the store's alert state on
SQLite, PostgreSQL and MariaDB, and what a real SMTP server (aiosmtpd) and a
Slack-speaking HTTP recorder on loopback receive run after run.

Slack messages go through ``slack_sdk``'s ``WebhookClient`` (the client
``prefect_slack.SlackWebhook.get_client(sync_client=True)`` returns)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from slack_sdk.webhook import WebhookClient
from sqlalchemy import create_engine

from replenish.notify import Alert, EmailNotifier, LogNotifier, Notifier, SlackWebhookNotifier
from replenish.notify.dispatch import DeliveryReport, dispatch
from replenish.notify.lifecycle import AlertScope
from replenish.notify.rules import SKU_KINDS, AlertRules, run_scopes
from replenish.notify.slack import webhook_client_poster
from replenish.store import Store
from replenish.store.models import AlertState, Base
from tests.servers import HttpRecorder, ReceivedMail, SmtpRecorder, closed_port

DAY = date(2026, 11, 20)
HOOK = "/services/T0000TEST/B0000TEST/alertsW3bh00kS3cr3t"
LOGGER = logging.getLogger("replenish.test.alerts")
SKU_SCOPE = [AlertScope(SKU_KINDS)]


def stockout(sku: str, cover: float, severity: str = "warning", loc: str = "WH1") -> Alert:
    return Alert(
        kind="stockout_risk",
        severity=severity,
        title=f"{sku} @ {loc}: stockout before the next delivery",
        message=f"{cover:g} days of cover against a lead time of 10 days.",
        sku=sku,
        location_id=loc,
        details={"days_of_cover": cover, "on_hand": 12.0},
    )


def late_po(po: str, days: int, severity: str = "warning") -> Alert:
    return Alert(
        kind="po_late",
        severity=severity,
        title=f"PO {po} from S1: {days} days late",
        message="expected earlier",
        location_id="WH1",
        supplier_id="S1",
        ref=po,
        details={"days_late": days},
    )


class Peers:
    """A real SMTP server and a Slack recorder, with the channels that reach them."""

    def __init__(self, smtp: SmtpRecorder, slack: HttpRecorder) -> None:
        self.smtp, self.slack = smtp, slack

    def channels(self, *, slack_url: str | None = None) -> list[Notifier]:
        url = slack_url or self.slack.url + HOOK
        client = WebhookClient(url=url)
        return [
            LogNotifier(LOGGER),
            SlackWebhookNotifier(
                url, poster=webhook_client_poster(client), backoff=0.0, max_attempts=2
            ),
            EmailNotifier(
                self.smtp.host,
                self.smtp.port,
                "replenish@shop.example",
                ["buyer@shop.example"],
                timeout=5.0,
            ),
        ]

    def payloads(self) -> list[dict[str, Any]]:
        return [request.json for request in self.slack.requests]

    def mails(self) -> list[ReceivedMail]:
        return self.smtp.messages


@pytest.fixture
def peers() -> Iterator[Peers]:
    with SmtpRecorder() as smtp, HttpRecorder() as slack:
        yield Peers(smtp, slack)


@pytest.fixture
def store(any_db_url: str) -> Iterator[Store]:
    s = Store(any_db_url)
    yield s
    s.dispose()


def run(
    store: Store,
    peers: Peers,
    alerts: Sequence[Alert],
    *,
    day: date = DAY,
    scopes: Sequence[AlertScope] = SKU_SCOPE,
    digest: bool = True,
    run_id: str = "run",
    channels: list[Notifier] | None = None,
) -> DeliveryReport:
    return dispatch(
        store,
        channels if channels is not None else peers.channels(),
        day,
        f"{run_id}-{day.isoformat()}",
        alerts,
        heading=f"replenish {day.isoformat()}",
        scopes=scopes,
        rules=AlertRules(),
        digest=digest,
        logger=LOGGER,
    )


def sections(payload: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]


def parts(mail: ReceivedMail) -> tuple[str, str]:
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


# =========================================================================== the story


def test_first_run_sends_a_rerun_sends_nothing(store: Store, peers: Peers) -> None:
    batch = [stockout("SKU-1", 2.0, "critical"), stockout("SKU-2", 6.0), late_po("PO-7", 3)]
    first = run(store, peers, batch, scopes=[*SKU_SCOPE, AlertScope(frozenset({"po_late"}))])
    assert (first.new, first.worse, first.resolved, first.sent) == (3, 0, 0, 3)
    assert first.channels == ["log", "slack", "email"] and first.failed == {}

    # Slack: one Block Kit message, grouped by severity
    (payload,) = peers.payloads()
    types = [b["type"] for b in payload["blocks"]]
    assert types[0] == "header" and types[-1] == "context" and "divider" in types
    assert payload["blocks"][0]["text"]["text"] == "replenish 2026-11-20"
    assert "1 critical, 2 warning" in payload["text"]
    body = sections(payload)
    assert body[0].startswith(":red_circle: *1 critical*")
    assert body[1].startswith(":red_circle: *CRITICAL* · *SKU-1 @ WH1")
    po = next(s for s in body if "PO-7" in s)
    assert "supplier `S1`" in po and "ref `PO-7`" in po and "days_late: *3*" in po

    # email: one multipart/alternative message, text and HTML
    (mail,) = peers.smtp.wait_for(1)
    assert mail["Subject"] == "[replenish] 1 critical, 2 warning — replenish 2026-11-20"
    assert mail.get_content_type() == "multipart/alternative"
    text, html = parts(mail)
    assert text.index("CRITICAL (1)") < text.index("WARNING (2)")
    assert "- [po_late] PO PO-7 from S1: 3 days late — PO-7 · supplier S1 @ WH1" in text
    assert "<h3" in html and "SKU-1 @ WH1: stockout before the next delivery" in html

    # the same alerts again (a rerun, the next day): nothing is said
    again = run(store, peers, batch, scopes=[*SKU_SCOPE, AlertScope(frozenset({"po_late"}))])
    later = run(store, peers, batch, day=DAY + timedelta(days=1))
    assert (again.sent, again.unchanged) == (0, 3) and later.sent == 0
    assert len(peers.payloads()) == 1 and len(peers.mails()) == 1

    opened = store.alert_states(DAY, status="open")
    assert len(opened) == 3 and set(opened["notify_count"]) == {1}
    assert set(opened["channels"]) == {"log,slack,email"}
    logged = store.alerts(DAY)  # the per-date log
    assert len(logged) == 3 and logged["sent_at"].notna().all()


def test_worse_alerts_are_sent_again_better_ones_are_not(store: Store, peers: Peers) -> None:
    run(store, peers, [stockout("SKU-1", 8.0), stockout("SKU-2", 8.0), stockout("SKU-3", 8.0)])
    nxt = DAY + timedelta(days=1)
    report = run(
        store,
        peers,
        [
            stockout("SKU-1", 7.5),  # 0.5 day less: not worse (threshold max(1, 50% of 8))
            stockout("SKU-2", 3.9),  # 4.1 days less: worse by its measure
            stockout("SKU-3", 9.0, "critical"),  # more cover but critical: worse by severity
        ],
        day=nxt,
    )
    assert (report.new, report.worse, report.unchanged) == (0, 2, 1)
    payload = peers.payloads()[-1]
    worse = [s for s in sections(payload)[1:]]
    assert worse[0].startswith(":red_circle: *CRITICAL* · _worse_ · *SKU-3")
    assert "severity warning → critical" in worse[0]
    assert (
        "days_of_cover 8 → 3.9" in worse[1] and "Worse since the notice of 2026-11-20" in worse[1]
    )
    text, _ = parts(peers.smtp.wait_for(2)[-1])
    assert "[stockout_risk] [worse] SKU-3" in text and "SKU-1" not in text

    # the reference is what was announced: SKU-1 creeping down is re-sent once the
    # drop since its notice (8) reaches the threshold (4 days)
    others = [stockout("SKU-2", 3.9), stockout("SKU-3", 9.0, "critical")]
    quiet = run(store, peers, [stockout("SKU-1", 5.0), *others], day=nxt + timedelta(days=1))
    loud = run(store, peers, [stockout("SKU-1", 4.0), *others], day=nxt + timedelta(days=2))
    assert (quiet.sent, loud.sent, loud.worse) == (0, 1, 1)
    # and an improvement is never announced, nor does it reset the reference
    better = run(store, peers, [stockout("SKU-1", 12.0), *others], day=nxt + timedelta(days=3))
    assert better.sent == 0
    row = store.open_alerts(["stockout_risk"]).set_index("sku").loc["SKU-1"]
    assert row["notified_measure"] == 4.0 and row["measure"] == 12.0 and row["notify_count"] == 2


def test_a_resolution_is_announced_once(store: Store, peers: Peers) -> None:
    run(store, peers, [stockout("SKU-1", 2.0, "critical"), stockout("SKU-2", 6.0)])
    nxt = DAY + timedelta(days=1)
    report = run(store, peers, [stockout("SKU-2", 6.0)], day=nxt)
    assert (report.resolved, report.unchanged, report.sent) == (1, 1, 1)
    payload = peers.payloads()[-1]
    (resolved,) = sections(payload)[1:]
    assert resolved.startswith(":white_check_mark: *RESOLVED* (was critical) · *Resolved: SKU-1")
    assert "open since 2026-11-20 (1 day)" in resolved
    assert "1 resolved" in payload["text"]
    mail = peers.smtp.wait_for(2)[-1]
    assert mail["Subject"] == (
        "[replenish] resolved: SKU-1 @ WH1: stockout before the next delivery"
        " — replenish 2026-11-21"
    )
    text, html = parts(mail)
    assert "RESOLVED (1)" in text and "RESOLVED (1)" in html

    # announced once: later runs without it say nothing
    assert run(store, peers, [stockout("SKU-2", 6.0)], day=nxt + timedelta(days=1)).sent == 0
    states = store.alert_states(nxt, status="resolved")
    assert list(states["sku"]) == ["SKU-1"] and list(states["status_on_date"]) == ["resolved"]
    assert list(store.alert_states(nxt, status="open")["sku"]) == ["SKU-2"]
    assert set(store.alert_states(DAY, status="open")["sku"]) == {"SKU-1", "SKU-2"}

    # raised again later: a new episode, announced as new
    back = run(store, peers, [stockout("SKU-1", 2.0, "critical")], day=nxt + timedelta(days=2))
    assert back.new == 1 and back.resolved == 1  # and SKU-2 is gone now
    assert len(store.alert_states(status="all")) == 3  # SKU-1 twice (two episodes), SKU-2


def test_only_evaluated_alerts_are_resolved(store: Store, peers: Peers) -> None:
    run(
        store,
        peers,
        [stockout("SKU-1", 2.0), stockout("SKU-2", 2.0), late_po("PO-7", 3)],
        scopes=[*SKU_SCOPE, AlertScope(frozenset({"po_late"}))],
    )
    nxt = DAY + timedelta(days=1)
    # a run of SKU-1 only, that does not evaluate purchase orders: nothing else resolves
    partial = run(store, peers, [], day=nxt, scopes=run_scopes(["SKU-1"]))
    assert partial.resolved == 1
    assert set(store.open_alerts()["alert_key"]) == {
        "stockout_risk|SKU-2|WH1",
        "po_late||WH1|S1|PO-7",
    }
    # a gate stop (no scope of stock alerts) resolves nothing either
    assert run(store, peers, [], day=nxt, scopes=[]).sent == 0
    # a full run resolves both
    assert run(store, peers, [], day=nxt, scopes=run_scopes(None)).resolved == 2


def test_digest_off_sends_one_message_per_alert(store: Store, peers: Peers) -> None:
    batch = [
        stockout("SKU-2", 6.0),
        stockout("SKU-1", 2.0, "critical"),
        late_po("PO-7", 9, "critical"),
    ]
    report = run(store, peers, batch, digest=False)
    assert report.sent == 3 and report.digest is False
    payloads = peers.payloads()
    assert len(payloads) == 3
    firsts = [sections(p)[1] for p in payloads]
    assert (
        "SKU-1" in firsts[0] and "PO-7" in firsts[1] and "SKU-2" in firsts[2]
    )  # most severe first
    subjects = sorted(mail["Subject"] for mail in peers.smtp.wait_for(3))
    tail = " — replenish 2026-11-20"
    assert subjects == [
        "[replenish] critical: PO PO-7 from S1: 9 days late" + tail,
        "[replenish] critical: SKU-1 @ WH1: stockout before the next delivery" + tail,
        "[replenish] warning: SKU-2 @ WH1: stockout before the next delivery" + tail,
    ]


def test_digest_groups_new_worse_and_resolved_in_one_message(store: Store, peers: Peers) -> None:
    run(store, peers, [stockout("SKU-1", 6.0), stockout("SKU-2", 6.0)])
    nxt = DAY + timedelta(days=1)
    run(store, peers, [stockout("SKU-1", 1.0, "critical"), stockout("SKU-3", 5.0)], day=nxt)
    assert len(peers.payloads()) == 2 and len(peers.smtp.wait_for(2)) == 2
    payload = peers.payloads()[-1]
    assert "1 critical, 1 warning, 1 resolved" in payload["text"]
    body = sections(payload)[1:]
    assert [s.split(" · ")[0] for s in body] == [
        ":red_circle: *CRITICAL*",
        ":large_orange_circle: *WARNING*",
        ":white_check_mark: *RESOLVED* (was warning)",
    ]
    dividers = [b["type"] for b in payload["blocks"]].count("divider")
    assert dividers == 3  # after the summary, and between the three groups


# =========================================================================== failures


def test_undelivered_notices_are_sent_by_the_next_run(store: Store, peers: Peers) -> None:
    dead = peers.channels(slack_url=f"http://127.0.0.1:{closed_port()}{HOOK}")
    dead[2] = EmailNotifier("127.0.0.1", closed_port(), "r@shop.example", ["b@shop.example"])
    failed = run(store, peers, [stockout("SKU-1", 2.0)], channels=dead)
    assert failed.released and set(failed.failed) == {"slack", "email"}
    assert "connection failed" in failed.failed["slack"] and HOOK not in failed.failed["slack"]
    assert store.open_alerts()["notified_at"].isna().all()

    retried = run(store, peers, [stockout("SKU-1", 2.0)], day=DAY + timedelta(days=1))
    assert retried.new == 1 and not retried.released
    assert len(peers.payloads()) == 1 and len(peers.mails()) == 1

    # a resolution whose notice failed is announced by the next run, once
    gone = run(store, peers, [], day=DAY + timedelta(days=2), channels=dead)
    assert gone.resolved == 1 and gone.released
    assert run(store, peers, [], day=DAY + timedelta(days=3)).resolved == 1
    assert run(store, peers, [], day=DAY + timedelta(days=4)).sent == 0


def test_thousands_of_alerts_take_every_path_in_bulk(store: Store, peers: Peers) -> None:
    """More alerts than one statement's batch (2,000): new, worse, unchanged,
    resolved, a rerun of the date and a failed delivery put back, each on
    every row (the store's writes are batched, the IN lists chunked under
    PostgreSQL's 65,535 parameters)."""
    from replenish.store import alerts as store_alerts

    n = store_alerts._BATCH + 700
    log_only: list[Notifier] = [LogNotifier(LOGGER)]
    first = [stockout(f"SKU-{i:05d}", 6.0) for i in range(n)]
    report = run(store, peers, first, channels=log_only)
    assert (report.new, report.worse, report.resolved) == (n, 0, 0)
    opened = store.open_alerts()
    assert len(opened) == n and opened["notify_count"].eq(1).all()
    assert opened["notified_at"].notna().all() and opened["channels"].eq("log").all()

    # next day: the first half worse (critical), a quarter unchanged, the rest gone
    day2 = DAY + timedelta(days=1)
    half, three_q = n // 2, 3 * n // 4
    second = [stockout(f"SKU-{i:05d}", 1.0, "critical") for i in range(half)] + [
        stockout(f"SKU-{i:05d}", 6.0) for i in range(half, three_q)
    ]
    report = run(store, peers, second, day=day2, channels=log_only)
    assert (report.new, report.worse, report.resolved) == (0, half, n - three_q)
    now_open = store.open_alerts().set_index("sku")
    assert len(now_open) == three_q
    worse = now_open.loc[[f"SKU-{i:05d}" for i in range(half)]]
    assert worse["severity"].eq("critical").all() and worse["notify_count"].eq(2).all()
    quiet = now_open.loc[[f"SKU-{i:05d}" for i in range(half, three_q)]]
    assert quiet["notify_count"].eq(1).all() and quiet["last_as_of"].eq(day2).all()

    # a rerun of the date announces nothing and keeps one log row per key
    assert run(store, peers, second, day=day2, channels=log_only).sent == 0
    logged = store.alerts(day2)
    assert len(logged) == three_q and logged["alert_key"].is_unique

    # a delivery that fails everywhere puts every claim back: announced next run
    dead: list[Notifier] = [
        EmailNotifier("127.0.0.1", closed_port(), "r@shop.example", ["b@shop.example"])
    ]
    day3 = DAY + timedelta(days=2)
    third = [stockout(f"SKU-{i:05d}", 6.0) for i in range(n, n + n)]
    failed = run(store, peers, third, day=day3, channels=dead)
    assert failed.released and failed.new == n
    fresh = store.open_alerts().set_index("sku").loc[[a.sku for a in third]]
    assert fresh["notified_at"].isna().all() and fresh["notify_count"].eq(0).all()
    again = run(store, peers, third, day=day3 + timedelta(days=1), channels=log_only)
    assert again.new == n and not again.released


def test_one_channel_down_does_not_hold_back_the_other(store: Store, peers: Peers) -> None:
    peers.slack.add_responses((404, {}, "no_service"))
    report = run(store, peers, [stockout("SKU-1", 2.0)])
    assert list(report.failed) == ["slack"] and "404 no_service" in report.failed["slack"]
    assert report.channels == ["log", "email"] and not report.released
    assert len(peers.mails()) == 1
    assert run(store, peers, [stockout("SKU-1", 2.0)]).sent == 0  # it went out by email


def test_concurrent_runs_announce_once(store: Store, peers: Peers) -> None:
    barrier = threading.Barrier(3)
    reports: list[DeliveryReport] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            barrier.wait()
            reports.append(run(store, peers, [stockout("SKU-1", 2.0)], run_id=f"r{i}"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert sorted(r.new for r in reports) == [0, 0, 1]
    assert len(peers.payloads()) == 1 and len(peers.mails()) == 1
    assert len(store.open_alerts()) == 1


# =========================================================================== schema


def test_migrations_match_the_alert_models(any_db_url: str) -> None:
    """The alert tables of Alembic's head schema are what the models declare,
    on SQLite, PostgreSQL and MariaDB."""
    Store(any_db_url).dispose()
    engine = create_engine(any_db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    mine = [d for d in diff if "alert" in repr(d)]
    assert mine == []
    assert AlertState.__tablename__ == "alert_state"
