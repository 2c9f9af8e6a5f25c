"""A run approved and read in a REAL Prefect UI, by a real browser.

``prefect server start`` (API and UI) runs as a subprocess on a free port
with its own PREFECT_HOME and database; the nightly flow runs against it in
another subprocess on a small demo shop, with an approval threshold, and
pauses. Debian's headless Chromium, driven over the Chrome DevTools Protocol
(a WebSocket, no extra package), opens the paused run, presses Resume, fills
in the approval form (a name, one order rejected) and submits it; the run
finishes. Then the browser opens the flow run's Artifacts tab and the
artifact pages and must find the summary's text, the draft-order table and
the link to the per-SKU report — then opens the report itself and finds its
pictures drawn.

Chromium missing: the test skips, or fails when REPLENISH_REQUIRE_SERVERS is
set (``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pytest
from websockets.sync.client import ClientConnection, connect

from replenish.store import Store
from tests.conftest import REQUIRE_SERVERS
from tests.servers import LOOPBACK, free_port

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-20"
THRESHOLD = 1000.0
APPROVER = "Petra (in the UI)"
T = TypeVar("T")

#: Runs in a subprocess: write a small demo shop, wait for the Prefect API,
#: run the nightly flow against it, print the ids.
FLOW_SCRIPT = """
import json, os, sys, time, urllib.request
from datetime import date

from replenish.demo import generate_demo
from replenish.sources.generic import write_snapshot

as_of = date.fromisoformat(sys.argv[1])
write_snapshot(generate_demo(as_of, seed=5, n_skus=20, days=120), os.environ["REPLENISH_ERP_URL"])
health = os.environ["PREFECT_API_URL"] + "/health"
deadline = time.monotonic() + 90
while True:
    try:
        urllib.request.urlopen(health, timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)

from flows.nightly import nightly_replenishment
from replenish.store import Store

summary = nightly_replenishment(
    as_of=as_of,
    approval_threshold=float(sys.argv[2]),
    auto_approve_below=True,
    approval_timeout=120,
    report_top_n=1,
)
store = Store(os.environ["REPLENISH_DB_URL"])
flow_run_id = store.runs(1).iloc[0]["flow_run_id"]
print(json.dumps({"run_id": summary["run_id"], "flow_run_id": flow_run_id}))
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Chromium is not installed (Debian: apt-get install -y chromium)"
        if REQUIRE_SERVERS:
            pytest.fail(message + " (REPLENISH_REQUIRE_SERVERS=1: the browser test is mandatory)")
        pytest.skip(message)
    return found


def wait_for(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.25)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Browser:
    """Headless Chromium on one page, spoken to over the DevTools Protocol."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.port = free_port()
        flags = [
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--window-size=1400,1000",
            f"--remote-debugging-address={LOOPBACK}",
            f"--remote-debugging-port={self.port}",
            f"--user-data-dir={profile}",
        ]
        if os.geteuid() == 0:  # Chromium refuses to sandbox as root
            flags.append("--no-sandbox")
        self.proc = subprocess.Popen(
            [executable, *flags, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        page = wait_for("Chromium's DevTools endpoint", self._page, 30)
        self.ws: ClientConnection = connect(page, max_size=None, open_timeout=10)
        self._id = 0
        self.call("Page.enable")

    def _page(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}/json/list", timeout=2) as r:
                targets = json.load(r)
        except OSError:
            return None
        pages = [t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"]
        return pages[0] if pages else None

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self._id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def click(self, tag: str, label: str) -> None:
        """Click the last ``tag`` element whose text is ``label``."""
        found = self.evaluate(
            f"(() => {{ const e = Array.from(document.querySelectorAll({tag!r}))"
            f".filter(e => e.textContent.trim() === {label!r}).pop();"
            " if (e) { e.click(); return true } return false })()"
        )
        assert found, f"no {tag} {label!r} on {self.evaluate('location.href')}"

    def type_into(self, selector: str, value: str) -> None:
        """Type ``value`` into the first element matching ``selector`` (the
        UI's form fields listen to their input events)."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({selector!r}); if (!e) return false;"
            f" e.value = {value!r}; e.dispatchEvent(new Event('input', {{bubbles: true}}));"
            " return true })()"
        )
        assert found, f"no {selector!r} on {self.evaluate('location.href')}"

    def choose(self, option: str) -> None:
        """Choose ``option`` in the first drop-down that offers it."""
        found = self.evaluate(
            "(() => { for (const s of document.querySelectorAll('select')) {"
            f" const i = Array.from(s.options).findIndex(o => o.text.trim() === {option!r});"
            " if (i >= 0) { s.selectedIndex = i;"
            " s.dispatchEvent(new Event('change', {bubbles: true})); return true } }"
            " return false })()"
        )
        assert found, f"no drop-down offers {option!r} on {self.evaluate('location.href')}"

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def links(self) -> list[str]:
        return list(self.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)"))

    def wait_for_text(self, *needles: str, timeout: float = 30) -> str:
        return wait_for(
            f"{needles} on {self.evaluate('location.href')}",
            lambda: (t := self.text()) and all(n in t for n in needles) and t,
            timeout,
        )

    def close(self) -> None:
        self.ws.close()
        stop(self.proc)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(chromium(), tmp_path / "chromium")
    try:
        yield b
    finally:
        b.close()


def api(base: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.load(r)


def paused_run(ui: str, flow: subprocess.Popen[Any], log: Path) -> str | None:
    """The id of the server's flow run once it is Paused (the server has no
    other run); fails at once if the flow process ended instead."""
    if flow.poll() is not None:
        raise AssertionError(f"the flow ended before pausing: {log.read_text()[-3000:]}")
    try:
        runs = api(ui, "/api/flow_runs/filter", {})
    except OSError:  # not up yet
        return None
    paused = [r["id"] for r in runs if (r.get("state") or {}).get("type") == "PAUSED"]
    return paused[0] if paused else None


def run_state(ui: str, flow_run_id: str) -> str:
    request = urllib.request.Request(f"{ui}/api/flow_runs/{flow_run_id}")
    with urllib.request.urlopen(request, timeout=10) as r:
        return str((json.load(r).get("state") or {}).get("type"))


def submit_form(browser: Browser, ui: str, flow_run_id: str, attempts: int = 3) -> None:
    """Fill in the approval form and submit it until the run leaves Paused.

    The UI validates the form against its JSON schema as the fields change; a
    Submit clicked before it caught up is ignored (seen once in CI: the run
    stayed paused until its approval timeout). A person would click again:
    so does this, refilling the fields first, at most ``attempts`` times."""
    for _ in range(attempts):
        browser.type_into("textarea", APPROVER)
        browser.choose("reject")  # the decision of the first order
        time.sleep(0.5)
        browser.click("button", "Submit")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if run_state(ui, flow_run_id) != "PAUSED":
                return
            time.sleep(0.25)
    raise AssertionError(f"the run stayed paused after Submit: {browser.text()[-2000:]}")


def test_a_run_is_approved_and_read_in_the_prefect_ui(tmp_path: Path, browser: Browser) -> None:
    port = free_port()
    ui = f"http://{LOOPBACK}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REPLENISH_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_API_URL=f"{ui}/api",
        DO_NOT_TRACK="1",
    )
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", LOOPBACK,
         "--port", str(port), "--no-services"],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "server.log").open("w"),
    )  # fmt: skip
    home = tmp_path / "home"
    flow_env = {
        **env,
        "PREFECT_API_URL": f"{ui}/api",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
        "REPLENISH_ERP_URL": f"sqlite:///{tmp_path / 'erp.db'}",
        "REPLENISH_DB_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "REPLENISH_HOME": str(home),
        "PYTHONPATH": str(ROOT),
    }
    # the flow subprocess writes the demo shop while the server starts, then pauses
    flow_out, flow_err = tmp_path / "flow.out", tmp_path / "flow.log"
    flow = subprocess.Popen(
        [sys.executable, "-c", FLOW_SCRIPT, AS_OF, str(THRESHOLD)],
        env=flow_env, cwd=ROOT, stdout=flow_out.open("w"), stderr=flow_err.open("w"),
    )  # fmt: skip
    try:
        flow_run_id = wait_for("the run to pause", lambda: paused_run(ui, flow, flow_err), 120)

        # the paused run's page: Resume, fill in the approval form, submit
        browser.goto(f"{ui}/runs/flow-run/{flow_run_id}")
        browser.wait_for_text("nightly-replenishment", "Paused", "Resume", timeout=45)
        browser.click("button", "Resume")
        form = browser.wait_for_text("Resume Flow Run", "wait for a decision", "Approver")
        waiting = sorted(set(re.findall(rf"{AS_OF}/SUP-[A-Z]/WH[0-9]", form)))
        assert waiting, form
        submit_form(browser, ui, flow_run_id)
        flow.wait(120)
        server_log = (tmp_path / "server.log").read_text(errors="replace")[-2000:]
        assert flow.returncode == 0, flow_err.read_text(errors="replace")[-3000:] + server_log
        ids = json.loads(flow_out.read_text().strip().splitlines()[-1])
        run_id = ids["run_id"]
        assert ids["flow_run_id"] == flow_run_id

        # the decisions taken in the browser are in the store, with who
        store = Store(flow_env["REPLENISH_DB_URL"])
        log = store.decisions(as_of=date.fromisoformat(AS_OF))
        store.dispose()
        by_ui = log[log["via"] == "prefect-ui"]
        assert sorted(by_ui["po_key"]) == waiting
        assert set(by_ui["decided_by"]) == {APPROVER}
        assert sorted(by_ui["decision"]) == ["approved"] * (len(waiting) - 1) + ["rejected"]
        assert set(log[log["via"] == "auto"]["decided_by"]) == {"auto"}

        report = (home / "reports" / f"{run_id}.html").resolve()
        artifacts = {
            a["key"]: a["id"]
            for a in api(
                ui, "/api/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
            )
        }

        # the flow run's page, Artifacts tab: every artifact of the run is listed
        browser.goto(f"{ui}/runs/flow-run/{flow_run_id}?tab=Artifacts")
        browser.wait_for_text("nightly-replenishment", "Artifacts", timeout=45)
        if "replenishment-summary" not in browser.text():  # the tab was not preselected
            browser.evaluate(
                "Array.from(document.querySelectorAll('li.p-tab'))"
                ".find(e => e.textContent.trim() === 'Artifacts').click()"
            )
        browser.wait_for_text(
            "replenishment-summary", "draft-orders", "kpis", "data-docs", "sku-report"
        )
        listed = browser.links()
        for key in ("replenishment-summary", "sku-report"):
            assert f"{ui}/artifacts/artifact/{artifacts[key]}" in listed, key

        # the summary artifact: its text, the order table, the links
        browser.goto(f"{ui}/artifacts/artifact/{artifacts['replenishment-summary']}")
        page = browser.wait_for_text(
            f"Replenishment {AS_OF}", "Draft orders per supplier", "Most at risk",
            f"Approval by {APPROVER}", "1 rejected", "rejected",
        )  # fmt: skip
        assert run_id in page and "service_rate" in page
        assert report.as_uri() in browser.links()

        # the report's link artifact, then the report itself with its pictures
        browser.goto(f"{ui}/artifacts/artifact/{artifacts['sku-report']}")
        browser.wait_for_text("sku-report", f"Per-SKU pictures of run {run_id}")
        assert report.as_uri() in browser.links()
        browser.goto(report.as_uri())
        browser.wait_for_text(f"Replenishment {AS_OF}")
        drawn = wait_for(
            "the report's pictures to be drawn",
            lambda: browser.evaluate(
                "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
                ".map(i => [i.naturalWidth, i.naturalHeight])"
            ),
            10,
        )
        assert drawn == [[1000, 700]]  # report_top_n=1: one picture, 1000×700 PNG
    finally:
        stop(flow)
        stop(server)
