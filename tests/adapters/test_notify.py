"""Notifiers against real servers on loopback: what did the peer receive?"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
from collections.abc import Iterator, Sequence
from email.message import EmailMessage

import httpx
import pydantic_core
import pytest
from slack_sdk.webhook import WebhookClient

from replenish.errors import ConfigurationError, NotifyError, NotifyUnavailable
from replenish.notify import (
    Alert,
    EmailNotifier,
    LogNotifier,
    SlackWebhookNotifier,
    build_notifiers,
    build_payloads,
    deduplicate,
    render_html,
    render_text,
    send_all,
    summarize,
)
from replenish.notify.channels import UnavailableChannel, email_from_server
from replenish.notify.slack import webhook_client_poster
from replenish.settings import Settings
from tests.servers import HttpRecorder, Response, SmtpRecorder, closed_port

HOOK_PATH = "/services/T0000TEST/B0000TEST/s3cr3tW3bh00kT0k3n"
HEADING = "nightly 2026-11-21"


def alert(
    severity: str = "critical",
    sku: str | None = "SKU-1",
    *,
    kind: str = "stockout_risk",
    location: str | None = "WH1",
    title: str | None = None,
    message: str = "projected to run out before the next receipt",
) -> Alert:
    return Alert(
        kind=kind,
        severity=severity,
        title=title or f"Stockout risk for {sku}",
        message=message,
        sku=sku,
        location_id=location,
        details={"on_hand": 3, "reorder_point": 800.0, "days_of_cover": 1.25},
    )


def mixed_batch() -> list[Alert]:
    return [
        alert("warning", "SKU-W1", kind="below_safety_stock"),
        alert("critical", "SKU-C1"),
        alert("info", "SKU-I1", kind="data_quality"),
        alert("critical", "SKU-C2"),
    ]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # trust_env=False: a proxy from the environment must never see test traffic
    with httpx.Client(trust_env=False) as client:
        yield client


class Sleeps(list[float]):
    """Records the waits instead of sleeping (tests stay fast)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# =========================================================================== alerts


def test_alert_key_is_stable_and_alert_is_immutable() -> None:
    a = alert("critical", "SKU-1")
    b = alert("warning", "SKU-1", title="other wording")
    assert a.key == b.key == "stockout_risk|SKU-1|WH1"
    assert (
        Alert(kind="run_failed", severity="critical", title="t", message="m").key == "run_failed||"
    )
    assert hash(a) == hash(alert("critical", "SKU-1"))  # usable in sets despite details
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.severity = "info"  # type: ignore[misc]
    source = {"on_hand": 3}
    b = Alert(kind="k", severity="info", title="t", message="m", details=source)
    source["on_hand"] = 0
    assert b.details == {"on_hand": 3}  # copied
    # Prefect persists task results: an alert must pickle and serialise to JSON
    assert pickle.loads(pickle.dumps(a)) == a
    assert Alert.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert pydantic_core.to_jsonable_python(a)["details"]["on_hand"] == 3
    with pytest.raises(ValueError, match="severity"):
        alert("urgent")


def test_deduplicate_keeps_the_most_severe_per_key() -> None:
    warning, critical = alert("warning", "SKU-1"), alert("critical", "SKU-1")
    other = alert("info", "SKU-2")
    assert deduplicate([warning, other, critical]) == [critical, other]


def test_render_text_groups_by_severity_most_severe_first() -> None:
    text = render_text(mixed_batch(), HEADING)
    assert text.startswith(HEADING)
    assert "2 critical, 1 warning, 1 info (4 alerts)" in text
    assert text.index("CRITICAL (2)") < text.index("WARNING (1)") < text.index("INFO (1)")
    assert text.index("SKU-C1") < text.index("SKU-C2") < text.index("SKU-W1")  # stable
    assert "days_of_cover=1.25" in text and "reorder_point=800" in text


def test_render_html_escapes_everything() -> None:
    evil = alert("critical", '<script>alert("x")</script>', message="A & B < C")
    page = render_html([evil], "<b>heading</b>")
    assert "<script>" not in page and "<b>heading</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "A &amp; B &lt; C" in page
    assert "&lt;b&gt;heading&lt;/b&gt;" in page


def test_renderings_truncate_past_the_limit() -> None:
    alerts = [alert("critical", f"SKU-{i:03d}") for i in range(55)]
    alerts += [alert("info", f"SKU-I{i}") for i in range(5)]
    text, page = render_text(alerts, HEADING), render_html(alerts, HEADING)
    assert "… and 10 more: 5 critical, 5 info" in text
    assert "… and 10 more: 5 critical, 5 info" in page
    assert "SKU-049" in text and "SKU-050" not in text and "SKU-I0" not in text
    assert "CRITICAL (55)" in text  # the group header counts the whole batch


def test_log_notifier_logs_each_alert_at_its_level(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("replenish.test.alerts")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        LogNotifier(logger).send(mixed_batch(), heading=HEADING)
        LogNotifier(logger).send([], heading=HEADING)
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in levels] == [
        logging.ERROR,
        logging.ERROR,
        logging.WARNING,
        logging.INFO,
    ]
    assert "SKU-C1" in levels[0][1] and HEADING in levels[0][1]


def test_send_all_collects_failures_and_keeps_going() -> None:
    class Broken:
        name = "broken"

        def send(self, alerts: object, *, heading: str) -> None:
            raise NotifyUnavailable("down")

    sent: list[str] = []

    class Fine:
        name = "fine"

        def send(self, alerts: object, *, heading: str) -> None:
            sent.append(heading)

    failures = send_all([Broken(), Fine()], mixed_batch(), heading=HEADING)
    assert list(failures) == ["broken"] and isinstance(failures["broken"], NotifyUnavailable)
    assert sent == [HEADING]


# =========================================================================== build_notifiers


def test_build_notifiers_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_webhook_url="https://hooks.slack.com" + HOOK_PATH,  # type: ignore[arg-type]
        smtp_host="smtp.example.com",
        smtp_port=587,
        smtp_username="bot",
        smtp_password="hunter2-secret",  # type: ignore[arg-type]
        smtp_starttls=True,
        alert_email_from="replenish@example.com",
        alert_email_to=["buyer@example.com", "ops@example.com"],
    )
    notifiers = build_notifiers(settings, logging.getLogger("replenish.test"))
    assert [n.name for n in notifiers] == ["log", "slack", "email"]
    slack, email = notifiers[1], notifiers[2]
    assert isinstance(slack, SlackWebhookNotifier)
    assert isinstance(email, EmailNotifier)
    assert email.recipients == ["buyer@example.com", "ops@example.com"]
    assert (email.host, email.port, email.starttls, email.username) == (
        "smtp.example.com",
        587,
        True,
        "bot",
    )
    assert "s3cr3t" not in repr(slack) and "hunter2" not in repr(email)


def test_build_notifiers_log_only_and_half_configured_email(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("SLACK_WEBHOOK_URL", "SMTP_HOST", "ALERT_EMAIL_TO"):
        monkeypatch.delenv(f"REPLENISH_{name}", raising=False)
    logger = logging.getLogger("replenish.test")
    bare = Settings(_env_file=None)  # type: ignore[call-arg]
    assert [n.name for n in build_notifiers(bare, logger)] == ["log"]
    half = Settings(_env_file=None, smtp_host="smtp.example.com")  # type: ignore[call-arg]
    with caplog.at_level(logging.WARNING, logger=logger.name):
        assert [n.name for n in build_notifiers(half, logger)] == ["log"]
    assert "REPLENISH_ALERT_EMAIL_TO" in caplog.text


# =========================================================================== Slack


def slack(url: str, client: httpx.Client, **options: object) -> tuple[SlackWebhookNotifier, Sleeps]:
    sleeps = Sleeps()
    options.setdefault("backoff", 0.01)
    notifier = SlackWebhookNotifier(url + HOOK_PATH, client=client, sleep=sleeps, **options)  # type: ignore[arg-type]
    return notifier, sleeps


def test_slack_posts_text_and_blocks(client: httpx.Client) -> None:
    with HttpRecorder() as server:
        notifier, _ = slack(server.url, client)
        notifier.send(mixed_batch(), heading=HEADING)
    (request,) = server.requests
    assert request.method == "POST" and request.path == HOOK_PATH
    assert request.headers["content-type"] == "application/json"
    payload = request.json
    assert HEADING in payload["text"] and "2 critical, 1 warning, 1 info" in payload["text"]
    blocks = payload["blocks"]
    types = [b["type"] for b in blocks]
    assert types[0] == "header" and types[-1] == "context"
    assert blocks[0]["text"] == {"type": "plain_text", "text": HEADING, "emoji": True}
    assert {"section", "divider"} <= set(types)
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(b["text"]["type"] == "mrkdwn" for b in blocks if b["type"] == "section")
    first_alert = sections[1]  # sections[0] is the summary
    assert "*CRITICAL*" in first_alert and "`SKU-C1`" in first_alert and "`WH1`" in first_alert
    assert "days_of_cover: *1.25*" in first_alert
    info = next(s for s in sections if "SKU-I1" in s)
    assert info.startswith(":large_blue_circle: *INFO*")


def test_slack_escapes_mrkdwn_control_characters(client: httpx.Client) -> None:
    with HttpRecorder() as server:
        notifier, _ = slack(server.url, client)
        notifier.send([alert("critical", "<A&B>", message="see <!channel>")], heading=HEADING)
    text = str(server.requests[0].json)
    assert "&lt;A&amp;B&gt;" in text and "&lt;!channel&gt;" in text
    assert "<!channel>" not in text and "<A&B>" not in text


def test_slack_splits_past_50_blocks(client: httpx.Client) -> None:
    alerts = [alert("critical", f"SKU-C{i:03d}") for i in range(70)]
    alerts += [alert("warning", f"SKU-W{i:03d}") for i in range(50)]
    with HttpRecorder() as server:
        notifier, _ = slack(server.url, client)
        notifier.send(alerts, heading=HEADING)
    requests = server.requests
    assert len(requests) == 3
    seen: list[str] = []
    for number, request in enumerate(requests, start=1):
        blocks = request.json["blocks"]
        assert len(blocks) <= 50
        assert blocks[0]["text"]["text"] == f"{HEADING} (part {number}/3)"
        assert all(
            len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] in ("section", "header")
        )
        for b in blocks[3:]:
            if b["type"] == "section":
                seen.append(b["text"]["text"].split("`")[1])
    assert seen == [a.sku for a in alerts]  # every alert once, in order


def test_slack_section_text_is_capped(client: httpx.Client) -> None:
    long = alert("warning", "SKU-1", message="&" * 5000)
    (payload,) = build_payloads([long], heading="h" * 400)
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    section = payload["blocks"][3]["text"]["text"]
    assert len(section) <= 3000
    assert not section.rstrip("…").endswith(("&", "&a", "&am"))


def test_slack_honours_retry_after_then_succeeds(client: httpx.Client) -> None:
    with HttpRecorder([(429, {"Retry-After": "2"}, "rate_limited")]) as server:
        notifier, sleeps = slack(server.url, client)
        notifier.send([alert()], heading=HEADING)
    assert len(server.requests) == 2
    assert server.requests[0].json == server.requests[1].json
    assert sleeps == [2.0]


def test_slack_caps_retry_after(client: httpx.Client) -> None:
    with HttpRecorder([(429, {"Retry-After": "3600"}, "")]) as server:
        notifier, sleeps = slack(server.url, client, max_retry_after=5.0)
        notifier.send([alert()], heading=HEADING)
    assert sleeps == [5.0] and len(server.requests) == 2


def test_slack_repeated_5xx_is_unavailable_after_bounded_retries(client: httpx.Client) -> None:
    with HttpRecorder(default=(500, {}, "internal_error")) as server:
        notifier, sleeps = slack(server.url, client, max_attempts=3, backoff=0.01)
        with pytest.raises(NotifyUnavailable, match="after 3 attempt") as info:
            notifier.send([alert()], heading=HEADING)
    assert len(server.requests) == 3
    assert sleeps == [0.01, 0.02]  # exponential backoff
    assert "500" in str(info.value) and HOOK_PATH not in str(info.value)


def test_slack_recovers_from_one_5xx(client: httpx.Client) -> None:
    with HttpRecorder([(503, {}, "service_unavailable")]) as server:
        notifier, _ = slack(server.url, client)
        notifier.send([alert()], heading=HEADING)
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "no_service"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ],
)
def test_slack_permanent_errors_are_not_retried(
    client: httpx.Client, status: int, body: str
) -> None:
    with HttpRecorder([(status, {}, body)]) as server:
        notifier, sleeps = slack(server.url, client)
        with pytest.raises(NotifyError) as info:
            notifier.send([alert()], heading=HEADING)
    assert not isinstance(info.value, NotifyUnavailable)
    message = str(info.value)
    assert str(status) in message and body in message
    assert HOOK_PATH not in message and "s3cr3t" not in message and server.url not in message
    assert len(server.requests) == 1 and sleeps == []


def test_slack_failure_in_a_later_part_says_how_many_went_out(client: httpx.Client) -> None:
    alerts = [alert("critical", f"SKU-{i:03d}") for i in range(60)]
    with HttpRecorder([(200, {}, "ok"), (400, {}, "invalid_payload")]) as server:
        notifier, _ = slack(server.url, client)
        with pytest.raises(NotifyError, match="message 2 of 2; 1 already posted"):
            notifier.send(alerts, heading=HEADING)


def test_slack_timeout_is_unavailable(client: httpx.Client) -> None:
    with HttpRecorder(default=Response(200, {}, "ok", delay=0.3)) as server:
        notifier, _ = slack(server.url, client, timeout=0.05, max_attempts=2)
        with pytest.raises(NotifyUnavailable, match="timed out") as info:
            notifier.send([alert()], heading=HEADING)
    assert len(server.requests) == 2 and HOOK_PATH not in str(info.value)


def test_slack_connection_refused_is_unavailable(client: httpx.Client) -> None:
    notifier, sleeps = slack(f"http://127.0.0.1:{closed_port()}", client, max_attempts=2)
    with pytest.raises(NotifyUnavailable, match="connection failed") as info:
        notifier.send([alert()], heading=HEADING)
    assert HOOK_PATH not in str(info.value) and len(sleeps) == 1
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_slack_url_is_redacted_from_httpx_logs(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with HttpRecorder() as server, caplog.at_level(logging.DEBUG):
        notifier, _ = slack(server.url, client)
        notifier.send([alert()], heading=HEADING)
    assert any(r.name == "httpx" for r in caplog.records)
    assert HOOK_PATH not in caplog.text and "s3cr3t" not in caplog.text


def test_slack_sends_nothing_for_no_alerts(client: httpx.Client) -> None:
    with HttpRecorder() as server:
        notifier, _ = slack(server.url, client)
        notifier.send([], heading=HEADING)
    assert server.requests == []


def test_slack_rejects_a_malformed_url_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        SlackWebhookNotifier("hooks.slack.com/services/T/B/s3cr3t")
    assert "s3cr3t" not in str(info.value)


# =========================================================================== email


def emailer(port: int, recipients: list[str] | None = None, **options: object) -> EmailNotifier:
    return EmailNotifier(
        "127.0.0.1",
        port,
        "replenish@shop.example",
        recipients or ["buyer@shop.example", "ops@shop.example"],
        timeout=2.0,
        local_hostname="client.test",
        **options,  # type: ignore[arg-type]
    )


def test_email_sends_one_multipart_message() -> None:
    batch = [*mixed_batch(), alert("warning", "<Mug & Co>")]
    with SmtpRecorder() as smtp:
        emailer(smtp.port).send(batch, heading=HEADING)
        (mail,) = smtp.wait_for(1)
    assert mail.mail_from == "replenish@shop.example"
    assert mail.rcpt_tos == ["buyer@shop.example", "ops@shop.example"]
    assert mail["Subject"] == mail.message["Subject"]  # a ReceivedMail reads like the message
    message = mail.message
    assert message["Subject"] == f"[replenish] 2 critical, 2 warning, 1 info — {HEADING}"
    assert message["To"] == "buyer@shop.example, ops@shop.example"
    assert message["Date"] and message["Message-ID"].endswith("@shop.example>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert isinstance(text_part, EmailMessage) and isinstance(html_part, EmailMessage)
    text, page = text_part.get_content(), html_part.get_content()
    assert "SKU-C1" in text and "<Mug & Co>" in text
    assert "&lt;Mug &amp; Co&gt;" in page and "<Mug & Co>" not in page
    assert text.index("CRITICAL") < text.index("WARNING") < text.index("INFO")


def test_email_logs_in_with_credentials() -> None:
    with SmtpRecorder(credentials=("bot", "hunter2")) as smtp:
        emailer(smtp.port, username="bot", password="hunter2").send([alert()], heading=HEADING)
        (mail,) = smtp.wait_for(1)
    assert mail.login == "bot"


def test_email_bad_password_is_an_error_without_the_password() -> None:
    with SmtpRecorder(credentials=("bot", "hunter2")) as smtp:
        notifier = emailer(smtp.port, username="bot", password="wrong-s3cr3t")
        with pytest.raises(NotifyError) as info:
            notifier.send([alert()], heading=HEADING)
        assert smtp.messages == []
    assert not isinstance(info.value, NotifyUnavailable)
    assert "535" in str(info.value) and "s3cr3t" not in str(info.value)
    assert "s3cr3t" not in repr(notifier)


def test_email_server_down_is_unavailable() -> None:
    with pytest.raises(NotifyUnavailable, match="cannot be reached"):
        emailer(closed_port()).send([alert()], heading=HEADING)


def test_email_all_recipients_refused_is_an_error() -> None:
    refuse = {"nobody@shop.example": "550 5.1.1 <nobody@shop.example>: user unknown"}
    with SmtpRecorder(refuse=refuse) as smtp:
        with pytest.raises(NotifyError, match="refused every recipient") as info:
            emailer(smtp.port, ["nobody@shop.example"]).send([alert()], heading=HEADING)
        assert smtp.messages == []
    assert not isinstance(info.value, NotifyUnavailable) and "550" in str(info.value)


def test_email_greylisted_recipients_are_transient() -> None:
    refuse = {"buyer@shop.example": "450 4.2.0 greylisted, try again later"}
    with SmtpRecorder(refuse=refuse) as smtp, pytest.raises(NotifyUnavailable, match="450"):
        emailer(smtp.port, ["buyer@shop.example"]).send([alert()], heading=HEADING)


def test_email_partly_refused_delivers_to_the_rest_and_reports() -> None:
    refuse = {"nobody@shop.example": "550 5.1.1 user unknown"}
    with SmtpRecorder(refuse=refuse) as smtp:
        notifier = emailer(smtp.port, ["buyer@shop.example", "nobody@shop.example"])
        with pytest.raises(NotifyError, match=r"1 of 2 recipient.*nobody@shop\.example"):
            notifier.send([alert()], heading=HEADING)
        (mail,) = smtp.wait_for(1)
    assert mail.rcpt_tos == ["buyer@shop.example"]


@pytest.mark.parametrize(
    ("reply", "transient"),
    [("451 4.3.0 try again later", True), ("554 5.7.1 message rejected", False)],
)
def test_email_data_rejection(reply: str, transient: bool) -> None:
    with (
        SmtpRecorder(data_reply=reply) as smtp,
        pytest.raises(NotifyError, match=reply.split()[0]) as info,
    ):
        emailer(smtp.port).send([alert()], heading=HEADING)
    assert isinstance(info.value, NotifyUnavailable) is transient


def test_email_starttls_not_offered_is_an_error() -> None:
    with SmtpRecorder() as smtp, pytest.raises(NotifyError, match="STARTTLS") as info:
        emailer(smtp.port, starttls=True).send([alert()], heading=HEADING)
    assert not isinstance(info.value, NotifyUnavailable)


def test_email_sends_nothing_for_no_alerts() -> None:
    with SmtpRecorder() as smtp:
        emailer(smtp.port).send([], heading=HEADING)
        assert smtp.messages == []


def test_summary_wording() -> None:
    assert summarize([]) == "no alerts"
    assert summarize(mixed_batch()) == "2 critical, 1 warning, 1 info"


# =========================================================================== changes, digest


def test_renderings_of_new_worse_and_resolved() -> None:
    batch = [
        dataclasses.replace(alert("warning", "SKU-R"), change="resolved", title="Resolved: R"),
        dataclasses.replace(alert("critical", "SKU-W"), change="worse"),
        dataclasses.replace(alert("warning", "SKU-N"), change="new"),
    ]
    assert summarize(batch) == "1 critical, 1 warning, 1 resolved"
    text, page = render_text(batch, HEADING), render_html(batch, HEADING)
    assert text.index("CRITICAL (1)") < text.index("WARNING (1)") < text.index("RESOLVED (1)")
    assert "- [stockout_risk] [worse] Stockout risk for SKU-W" in text
    assert "- [stockout_risk] Stockout risk for SKU-N" in text  # new is the rule: no mark
    assert page.index("CRITICAL (1)") < page.index("RESOLVED (1)") and "[worse]" in page
    with pytest.raises(ValueError, match="alert change"):
        dataclasses.replace(alert(), change="better")
    # the change is not part of the key, and survives JSON
    assert batch[1].key == alert().key.replace("SKU-1", "SKU-W")
    assert Alert.from_dict(json.loads(json.dumps(batch[0].to_dict()))) == batch[0]


def test_supplier_and_ref_make_their_own_key() -> None:
    po = Alert(
        kind="po_late", severity="warning", title="t", message="m", supplier_id="S1", ref="P9"
    )
    other = dataclasses.replace(po, ref="P10")
    assert po.key == "po_late|||S1|P9" != other.key
    assert po.where == "P9 · supplier S1"


def test_log_notifier_logs_resolutions_at_info(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("replenish.test.alerts")
    resolved = dataclasses.replace(alert("critical"), change="resolved")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        LogNotifier(logger).send([resolved], heading=HEADING)
    (record,) = caplog.records
    assert record.levelno == logging.INFO and "resolved critical alert" in record.getMessage()


def test_send_all_one_message_per_alert_stops_a_failing_channel() -> None:
    got: list[list[str]] = []

    class Recorder:
        name = "rec"

        def send(self, alerts: Sequence[Alert], *, heading: str) -> None:
            got.append([a.sku or "" for a in alerts])

    class FailsSecond:
        name = "flaky"
        calls = 0

        def send(self, alerts: object, *, heading: str) -> None:
            FailsSecond.calls += 1
            if FailsSecond.calls == 2:
                raise NotifyUnavailable("down")

    failures = send_all([Recorder(), FailsSecond()], mixed_batch(), heading=HEADING, digest=False)
    assert got == [["SKU-C1"], ["SKU-C2"], ["SKU-W1"], ["SKU-I1"]]  # most severe first
    assert FailsSecond.calls == 2
    assert str(failures["flaky"]) == "down (alert 2 of 4; 1 already sent)"
    assert isinstance(failures["flaky"], NotifyUnavailable)


# =========================================================================== Slack via slack_sdk


def sdk_slack(url: str, **options: object) -> tuple[SlackWebhookNotifier, Sleeps]:
    """A notifier posting through slack_sdk's WebhookClient, the client
    prefect_slack's SlackWebhook block hands out."""
    sleeps = Sleeps()
    options.setdefault("backoff", 0.01)
    client = WebhookClient(url=url + HOOK_PATH)
    notifier = SlackWebhookNotifier(
        url + HOOK_PATH,
        poster=webhook_client_poster(client),
        sleep=sleeps,
        **options,  # type: ignore[arg-type]
    )
    return notifier, sleeps


def test_slack_sdk_poster_posts_the_block_kit_payload() -> None:
    with HttpRecorder() as server:
        notifier, _ = sdk_slack(server.url)
        notifier.send(mixed_batch(), heading=HEADING)
    (request,) = server.requests
    assert request.method == "POST" and request.path == HOOK_PATH
    assert request.headers["content-type"].startswith("application/json")
    assert request.json == build_payloads(mixed_batch(), heading=HEADING)[0]


def test_slack_sdk_poster_retries_429_and_5xx_then_gives_up() -> None:
    with HttpRecorder([(429, {"Retry-After": "2"}, "rate_limited")]) as server:
        notifier, sleeps = sdk_slack(server.url)
        notifier.send([alert()], heading=HEADING)
    assert len(server.requests) == 2 and sleeps == [2.0]
    with HttpRecorder(default=(500, {}, "internal_error")) as server:
        notifier, sleeps = sdk_slack(server.url, max_attempts=3)
        with pytest.raises(NotifyUnavailable, match=r"after 3 attempt.*500 internal_error"):
            notifier.send([alert()], heading=HEADING)
    assert len(server.requests) == 3 and sleeps == [0.01, 0.02]


def test_slack_sdk_poster_permanent_error_and_timeout() -> None:
    with HttpRecorder([(404, {}, "no_service")]) as server:
        notifier, sleeps = sdk_slack(server.url)
        with pytest.raises(NotifyError, match="HTTP 404 no_service") as info:
            notifier.send([alert()], heading=HEADING)
    assert not isinstance(info.value, NotifyUnavailable) and sleeps == []
    with HttpRecorder(default=Response(200, {}, "ok", delay=1.5)) as server:
        notifier, _ = sdk_slack(server.url, timeout=0.2, max_attempts=1)
        with pytest.raises(NotifyUnavailable, match="timed out") as timed_out:
            notifier.send([alert()], heading=HEADING)
    assert HOOK_PATH not in str(timed_out.value)


def test_slack_sdk_poster_connection_refused_never_logs_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        notifier, sleeps = sdk_slack(f"http://127.0.0.1:{closed_port()}", max_attempts=2)
        with pytest.raises(NotifyUnavailable, match="connection failed") as info:
            notifier.send([alert()], heading=HEADING)
    assert len(sleeps) == 1
    assert HOOK_PATH not in str(info.value) and "s3cr3t" not in caplog.text
    assert HOOK_PATH not in caplog.text


# =========================================================================== channels


def test_unavailable_channel_fails_every_send_but_the_empty_one() -> None:
    channel = UnavailableChannel("slack", "the block 'x' cannot be loaded")
    channel.send([], heading=HEADING)
    failures = send_all([channel], [alert()], heading=HEADING)
    assert str(failures["slack"]) == "the block 'x' cannot be loaded"


@pytest.mark.parametrize(
    ("smtp_type", "port", "expected"),
    [
        ("INSECURE", None, (25, False, False)),
        ("starttls", None, (587, True, False)),
        ("SSL", None, (465, False, True)),
        ("SSL", 2465, (2465, False, True)),
    ],
)
def test_email_from_a_server_block(
    smtp_type: str, port: int | None, expected: tuple[int, bool, bool]
) -> None:
    settings = Settings(_env_file=None, alert_email_to=["buyer@shop.example"])  # type: ignore[call-arg]
    email = email_from_server(
        host="smtp.example.com",
        smtp_type=smtp_type,
        port=port,
        username="bot",
        password="hunter2-secret",
        verify=False,
        settings=settings,
        logger=logging.getLogger("replenish.test"),
    )
    assert email is not None
    assert (email.port, email.starttls, email.implicit_tls) == expected
    assert email.recipients == ["buyer@shop.example"] and email.verify is False
    assert "hunter2" not in repr(email)
    with pytest.raises(ConfigurationError, match="smtp_type must be one of SSL, STARTTLS"):
        email_from_server(
            host="h",
            smtp_type="TLS",
            port=None,
            username=None,
            password=None,
            verify=True,
            settings=settings,
            logger=logging.getLogger("replenish.test"),
        )


def test_email_block_sends_through_the_real_server() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        alert_email_to=["buyer@shop.example"],
        alert_email_from="replenish@shop.example",
    )
    with SmtpRecorder(credentials=("bot", "hunter2")) as smtp:
        email = email_from_server(
            host=smtp.host,
            smtp_type="INSECURE",
            port=smtp.port,
            username="bot",
            password="hunter2",
            verify=True,
            settings=settings,
            logger=logging.getLogger("replenish.test"),
        )
        assert email is not None
        email.send([alert()], heading=HEADING)
        (mail,) = smtp.wait_for(1)
    assert mail.login == "bot" and mail.rcpt_tos == ["buyer@shop.example"]
    assert mail["Subject"] == f"[replenish] critical: Stockout risk for SKU-1 — {HEADING}"


def test_a_long_subject_keeps_single_spaces() -> None:
    title = "Stockout risk for a SKU with a rather long name, Überzug 2000 in anthracite grey"
    with SmtpRecorder() as smtp:
        emailer(smtp.port).send([alert(title=title)], heading=HEADING)
        (mail,) = smtp.wait_for(1)
    assert mail["Subject"] == f"[replenish] critical: {title} — {HEADING}"
    assert all(len(line) <= 998 for line in mail.raw.split(b"\r\n"))
