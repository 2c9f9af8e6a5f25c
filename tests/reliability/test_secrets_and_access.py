"""Promise 5, secrets and access.

* Credentials come from the environment or Prefect blocks (the ERP URL of
  the scanned run from a Secret block) and never reach
  a log line, a Prefect log or artifact, a flow run's parameters or state, an
  alert, the store, or a file the run writes: a run with a password in the
  ERP URL, an SMTP password and a Slack webhook token — one that completes
  and one that fails on the ERP — is scanned everywhere for them.
* Every SQL statement is parameterised: user-supplied values (``--sku``
  values, run ids, order keys, channel / source names, YAML profile
  parameters) that look like SQL are read as the plain values they are, and
  a canary table survives; and no statement of the library is built by
  formatting a value into SQL text (a static check).
* The ERP is read with a read-only database user: the extract works, a
  write fails (PostgreSQL and MariaDB); docs/reliability.md says how to
  create one.
"""

from __future__ import annotations

import ast
import asyncio
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from prefect.blocks.system import Secret
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

import flows.nightly
from flows.nightly import nightly_replenishment
from replenish import model
from replenish.demo import generate_demo
from replenish.errors import ReplenishError, StoreError
from replenish.model import ErpSnapshot
from replenish.sources import open_erp
from replenish.sources.generic import GenericErp, write_snapshot
from replenish.store import Store
from tasks.extract import extract_erp
from tests.servers import HttpRecorder, SmtpRecorder, closed_port

AS_OF = date(2026, 11, 20)
REPO = Path(__file__).resolve().parents[2]
ERP_PASSWORD = "Erp-Pa55word-7f3a9c"
SMTP_PASSWORD = "Smtp-Pa55word-b81e04"
SLACK_TOKEN = "xoxWebhookToken4d2c9e"
SECRETS = (ERP_PASSWORD, SMTP_PASSWORD, SLACK_TOKEN)
INJECTIONS = (
    "x' OR '1'='1",
    "'; DROP TABLE canary; --",
    'a"; DELETE FROM canary; --',
    "1; UPDATE canary SET n = 0",
    "%(sku)s %s :sku ?",
    "O'Brien\\'; --",
)


@pytest.fixture(scope="module")
def demo() -> ErpSnapshot:
    return generate_demo(AS_OF, seed=3, n_skus=20, days=120)


# ------------------------------------------------------------ read-only ERP users


def _admin(url: str) -> Any:
    return create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture
def postgres_reader(postgres_url: str) -> Iterator[str]:
    """A read-only PostgreSQL role on the test database (docs/reliability.md):
    the URL that logs in with it (and a password)."""
    role = f"replenish_ro_{uuid.uuid4().hex[:8]}"
    database = make_url(postgres_url).database
    admin = _admin(postgres_url)
    with admin.connect() as c:
        c.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{ERP_PASSWORD}'"))
        c.execute(text(f"GRANT CONNECT ON DATABASE {database} TO {role}"))
        c.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        c.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        c.execute(
            text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}")
        )
    url = make_url(postgres_url).set(username=role, password=ERP_PASSWORD)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": role},
            )
            c.execute(text(f"DROP OWNED BY {role}"))
            c.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


@pytest.fixture
def mariadb_reader(mariadb_url: str) -> Iterator[str]:
    """A read-only MariaDB user on the test database (docs/reliability.md)."""
    user = f"ro_{uuid.uuid4().hex[:8]}"
    database = make_url(mariadb_url).database
    hosts = ("%", "localhost", "127.0.0.1")
    admin = _admin(mariadb_url)
    with admin.connect() as c:
        for host in hosts:
            c.execute(text(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{ERP_PASSWORD}'"))
            c.execute(text(f"GRANT SELECT ON `{database}`.* TO '{user}'@'{host}'"))
    try:
        url = make_url(mariadb_url).set(username=user, password=ERP_PASSWORD)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            for host in hosts:
                c.execute(text(f"DROP USER IF EXISTS '{user}'@'{host}'"))
        admin.dispose()


def _reads_but_cannot_write(admin_url: str, reader_url: str, demo: ErpSnapshot) -> None:
    write_snapshot(demo, admin_url)
    if make_url(admin_url).get_backend_name() == "postgresql":  # tables made after the grant
        with _admin(admin_url).connect() as c:
            role = make_url(reader_url).username
            c.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    full = GenericErp(admin_url).read_snapshot(AS_OF, history_days=120)
    erp = open_erp(reader_url)
    try:
        erp.check_contract()
        mine = erp.read_snapshot(AS_OF, history_days=120)
        assert mine.row_counts() == full.row_counts()
        assert mine.row_counts()["sales_order_lines"] > 1000
        with pytest.raises(Exception, match=r"(?i)denied"), erp.engine.begin() as c:
            c.execute(text("DELETE FROM sales_order_lines"))
        with pytest.raises(Exception, match=r"(?i)denied"), erp.engine.begin() as c:
            c.execute(text("CREATE TABLE replenish_was_here (x int)"))
    finally:
        erp.engine.dispose()
    assert GenericErp(admin_url).read_snapshot(AS_OF, history_days=120).row_counts() == (
        full.row_counts()
    )


@pytest.mark.postgres
def test_a_read_only_postgresql_user_reads_the_erp_and_cannot_write(
    postgres_url: str, postgres_reader: str, demo: ErpSnapshot
) -> None:
    _reads_but_cannot_write(postgres_url, postgres_reader, demo)


@pytest.mark.mariadb
def test_a_read_only_mariadb_user_reads_the_erp_and_cannot_write(
    mariadb_url: str, mariadb_reader: str, demo: ErpSnapshot
) -> None:
    _reads_but_cannot_write(mariadb_url, mariadb_reader, demo)


# ------------------------------------------------------------------- no secret leaks


def _prefect_records(flow_run_ids: list[str]) -> list[str]:
    """Everything Prefect keeps of the runs: logs, artifacts, parameters, states."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    async def read() -> list[str]:
        out: list[str] = []
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids))
            )
            out += [log.message for log in logs]
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids)
                )
            )
            out += [str(a.data) + str(a.description) for a in artifacts]
            for run_id in flow_run_ids:
                run = await client.read_flow_run(uuid.UUID(run_id))
                out.append(str(run.parameters))
                out.append(str(run.state.message if run.state else ""))
                out.append(str(run.job_variables))
            assert logs and artifacts, "nothing recorded: the scan would prove nothing"
        return out

    return asyncio.run(read())


def _store_text(store_url: str) -> str:
    engine = create_engine(store_url)
    try:
        parts = []
        with engine.connect() as c:
            for table in inspect(engine).get_table_names():
                parts += [str(tuple(row)) for row in c.execute(text(f'SELECT * FROM "{table}"'))]
        return "\n".join(parts)
    finally:
        engine.dispose()


def _files_text(folder: Path) -> str:
    parts = []
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix not in (".db", ".sqlite", ".png"):
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


@pytest.mark.flow
@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_server")
def test_no_secret_reaches_logs_artifacts_alerts_or_the_store(
    postgres_url: str,
    postgres_reader: str,
    demo: ErpSnapshot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_snapshot(demo, postgres_url)
    reader = make_url(postgres_reader).username
    with _admin(postgres_url).connect() as c:
        c.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}"))
    home = tmp_path / "home"
    store_url = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    monkeypatch.setattr(
        flows.nightly, "extract_erp", extract_erp.with_options(retry_delay_seconds=0)
    )
    caplog.set_level("DEBUG")
    with (
        SmtpRecorder(credentials=("alerts@shop.example", SMTP_PASSWORD)) as smtp,
        HttpRecorder() as slack,
    ):
        # the ERP URL (with its password) from a Prefect Secret block for the
        # good run, from the environment for the failing one: both sources scanned
        block_name = f"erp-url-{uuid.uuid4().hex[:8]}"
        Secret(value=postgres_reader).save(block_name)
        env = {
            "REPLENISH_ERP_URL_BLOCK": block_name,
            "REPLENISH_DB_URL": store_url,
            "REPLENISH_HOME": str(home),
            "REPLENISH_SLACK_WEBHOOK_URL": f"{slack.url}/services/T0/B0/{SLACK_TOKEN}",
            "REPLENISH_SMTP_HOST": smtp.host,
            "REPLENISH_SMTP_PORT": str(smtp.port),
            "REPLENISH_SMTP_USERNAME": "alerts@shop.example",
            "REPLENISH_SMTP_PASSWORD": SMTP_PASSWORD,
            "REPLENISH_ALERT_EMAIL_TO": '["buyer@shop.example"]',
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        good = nightly_replenishment(as_of=AS_OF, return_state=True, report_top_n=1)
        assert good.is_completed(), good.message
        # the same password, an ERP that does not answer: the failure path
        down = make_url(postgres_reader).set(port=closed_port())
        monkeypatch.setenv("REPLENISH_ERP_URL", down.render_as_string(hide_password=False))
        bad = nightly_replenishment(as_of=AS_OF, return_state=True)
        assert bad.is_failed()
        mails = [m.raw.decode("utf-8", "replace") for m in smtp.messages]
        posts = [r.text for r in slack.requests]
        paths = [r.path for r in slack.requests]
        logins = [m.login for m in smtp.messages]

    assert len(mails) >= 2 and len(posts) >= 2, "alerts of both runs were sent"
    assert all(SLACK_TOKEN in p for p in paths)  # the token only ever travels in the URL
    assert logins and all(login for login in logins)  # the SMTP login was used
    error = bad.result(raise_on_failure=False)
    assert isinstance(error, ReplenishError) and "***" in str(error)

    out = capsys.readouterr()
    places = {
        "log records (caplog)": caplog.text
        + "\n".join(str(r.args) + str(r.exc_info) for r in caplog.records),
        "stdout/stderr": out.out + out.err,
        "Prefect logs, artifacts, parameters and states": "\n".join(
            _prefect_records([str(s.state_details.flow_run_id) for s in (good, bad)])
        ),
        "emails": "\n".join(mails),
        "Slack message bodies": "\n".join(posts),
        "the store": _store_text(store_url),
        "files the run wrote": _files_text(home) if home.exists() else "",
        "the error": f"{error!s} {error!r}",
    }
    assert "***" in places["the store"] or "ro_" in places["the store"]  # the ERP is recorded
    leaks = [(where, s) for where, blob in places.items() for s in SECRETS if s in blob]
    assert leaks == []


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_urls_from_secret_blocks_and_a_missing_block_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from replenish.errors import ConfigurationError
    from replenish.settings import Settings

    for name in ("REPLENISH_ERP_URL", "REPLENISH_DB_URL"):  # the environment wins
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match=r"REPLENISH_ERP_URL_BLOCK='no-such-url'.*Secret"):
        Settings(erp_url_block="no-such-url").erp()
    Secret(value="   ").save("blank-url", overwrite=True)
    with pytest.raises(ConfigurationError, match="must hold a database URL"):
        Settings(db_url_block="blank-url").store()
    Secret(value=f"sqlite:///x.db?password={ERP_PASSWORD}").save("a-url", overwrite=True)
    assert Settings(db_url_block="a-url").store().endswith(ERP_PASSWORD)
    # the environment's URL wins over the block
    assert Settings(db_url="sqlite:///y.db", db_url_block="a-url").store() == "sqlite:///y.db"


# ----------------------------------------------------------------- parameterised SQL


def _canary(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE canary (n INTEGER)"))
        c.execute(text("INSERT INTO canary (n) VALUES (42)"))
    engine.dispose()


def _canary_alive(url: str) -> None:
    engine = create_engine(url)
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM canary")).scalars().all() == [42]
    engine.dispose()


def test_sku_filters_with_sql_in_them_are_plain_values(any_db_url: str, demo: ErpSnapshot) -> None:
    """``--sku`` values reach the ERP query as bound values: a SKU that really
    contains quotes is found, SQL-looking ones find nothing and break nothing."""
    odd = 'O\'Brien "mug"; --'
    snap = ErpSnapshot(**demo.tables())
    first = str(snap.products["sku"].iloc[0])
    for name in ("products", "supplier_products", "stock_levels", "sales_order_lines"):
        frame = getattr(snap, name).copy()
        frame["sku"] = frame["sku"].where(frame["sku"] != first, odd)
        setattr(snap, name, frame)
    write_snapshot(snap, any_db_url)
    _canary(any_db_url)
    erp = GenericErp(any_db_url)
    try:
        found = erp.read_snapshot(AS_OF, history_days=120, skus=[odd])
        assert set(found.products["sku"]) == {odd}
        assert len(found.sales_order_lines) > 0
        assert set(found.sales_order_lines["sku"]) == {odd}
        nothing = erp.read_snapshot(AS_OF, history_days=120, skus=list(INJECTIONS))
        assert all(len(frame) == 0 for name, frame in nothing.tables().items() if "sku" in frame)
    finally:
        erp.engine.dispose()
    _canary_alive(any_db_url)
    assert GenericErp(any_db_url).read_snapshot(AS_OF, history_days=120).row_counts() == (
        snap_counts(any_db_url)
    )


def snap_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as c:
        rows = c.execute(text("SELECT count(*) FROM products")).scalar_one()
    engine.dispose()
    erp = GenericErp(url)
    try:
        counts = erp.read_snapshot(AS_OF, history_days=120).row_counts()
    finally:
        erp.engine.dispose()
    assert counts["products"] == rows
    return counts


def test_run_ids_order_keys_and_source_names_with_sql_in_them_are_plain_values(
    store_url: str,
) -> None:
    """The store's user-supplied keys: run ids (``--run``), order keys
    (approval), channel / source names (the demand cache)."""
    store = Store(store_url)
    _canary(store_url)
    try:
        run_id = store.start_run(AS_OF, erp="sqlite:///erp.db", parameters={}, dry_run=True)
        store.finish_run(run_id, "completed", counts={})
        for value in INJECTIONS:
            with pytest.raises(StoreError, match="no run"):
                store.resolve_run(value)
            for read in (store.plans, store.quarantine, lambda v: store.orders(run_id=v)):
                _nothing_for(read, value)
            with pytest.raises(StoreError):
                store.decide(value, "approved", "tester")
        # a source name is stored and found back as it is
        source = "x'; DROP TABLE canary;--"[:32]
        lines = model.coerce(
            "sales_order_lines",
            pd.DataFrame(
                [{"order_id": "1'--", "line_no": 1, "sku": "A';--", "location_id": "WH1",
                  "channel": source, "qty": 2.0, "ordered_at": "2026-11-19 10:00",
                  "status": "shipped"}]
            ),
        )  # fmt: skip
        store.ingest(source, lines, model.empty_frame("returns"), None)
        assert store.sources()["source"].tolist() == [source]
        cached = store.cached_sales(None, sources=[source, *INJECTIONS])
        assert cached["sku"].tolist() == ["A';--"] and cached["order_id"].tolist() == ["1'--"]
        store.reset_source("' OR '1'='1")  # matches nothing
        assert len(store.cached_sales(None)) == 1
        assert store.resolve_run(None) == run_id
    finally:
        store.dispose()
    _canary_alive(store_url)


def _nothing_for(read: Any, value: str) -> None:
    """Reading by ``value`` finds nothing: an empty frame, or a StoreError
    naming the value as it is."""
    try:
        frame = read(value)
    except StoreError as e:
        assert repr(value) in str(e) or value in str(e)
    else:
        assert frame.empty


def test_yaml_profile_parameters_with_sql_in_them_are_bound_values(
    tmp_path: Path, demo: ErpSnapshot
) -> None:
    url = f"sqlite:///{(tmp_path / 'erp.db').as_posix()}"
    write_snapshot(demo, url)
    _canary(url)
    hostile = "web'); DROP TABLE canary; --"
    queries: dict[str, str | None] = {}
    for table in model.REQUIRED_TABLES:
        cols = ", ".join(model.CONTRACT[table])
        queries[table] = f"SELECT {cols} FROM {table}"
    sales = [
        c if c != "channel" else ":channel AS channel" for c in model.CONTRACT["sales_order_lines"]
    ]
    queries["sales_order_lines"] = f"SELECT {', '.join(sales)} FROM sales_order_lines"
    queries["stock_history"] = None
    queries["promotions"] = None
    profile = tmp_path / "hostile.yaml"
    profile.write_text(
        yaml.safe_dump({"name": "hostile", "parameters": {"channel": hostile}, "queries": queries}),
        encoding="utf-8",
    )
    erp = open_erp(url, profile=f"yaml:{profile}")
    try:
        snap = erp.read_snapshot(AS_OF, history_days=120)
    finally:
        erp.engine.dispose()
    assert set(snap.sales_order_lines["channel"]) == {hostile}
    assert len(snap.sales_order_lines) > 1000
    _canary_alive(url)


#: Functions that build SQL text at run time, reviewed: only identifiers the
#: code chose go into the text (quoted table and column names of the cache,
#: the profile file's own SELECTs); values are always bound parameters.
REVIEWED_SQL_BUILDERS = {
    ("replenish/store/cache.py", "upsert"),  # quoted cache names, driver parameters
    ("replenish/store/cache.py", "_copy"),  # quoted cache names, COPY FROM STDIN
    ("replenish/store/cache.py", "_replaced"),  # quoted key columns, the code's temp table
    ("replenish/store/__init__.py", "_bulk_insert"),  # quoted names; COPY rows / bound values
    ("replenish/sources/yaml_profile.py", "query_parameters"),  # the profile's SELECT
    ("replenish/sources/yaml_profile.py", "_statement"),  # the profile's SELECT, bound
}
_SQL_VERB = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|COPY|WITH|TRUNCATE)\b", re.I
)


def _sql_built_at_run_time(path: Path) -> list[tuple[str, int, str]]:
    """(enclosing function, line, call) of every statement whose SQL text is
    computed: ``text(x)`` / ``exec_driver_sql(x)`` with a non-literal ``x``,
    and any call given an f-string that starts like SQL."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            if isinstance(child, ast.Call) and child.args:
                func, arg = child.func, child.args[0]
                literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                called = (isinstance(func, ast.Name) and func.id == "text") or (
                    isinstance(func, ast.Attribute) and func.attr == "exec_driver_sql"
                )
                fstring_sql = isinstance(arg, ast.JoinedStr) and any(
                    isinstance(v, ast.Constant) and _SQL_VERB.match(str(v.value))
                    for v in arg.values[:1]
                )
                if (called and not literal) or fstring_sql:
                    segment = ast.get_source_segment(source, child) or ""
                    found.append((name, child.lineno, segment.splitlines()[0]))
            visit(child, name)

    visit(tree, "<module>")
    return found


def test_no_library_sql_is_made_by_formatting_values_into_text() -> None:
    """Every statement of the library is SQLAlchemy Core (values bound) or a
    literal; where SQL text is computed, a reviewed function puts only
    identifiers in it. A new one must be reviewed and added above."""
    unreviewed = []
    seen = set()
    for path in sorted((REPO / "replenish").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for function, line, call in _sql_built_at_run_time(path):
            seen.add((rel, function))
            if (rel, function) not in REVIEWED_SQL_BUILDERS:
                unreviewed.append(f"{rel}:{line} in {function}(): {call}")
    assert unreviewed == [], "SQL text built at run time: bind the values, or review it"
    assert ("replenish/store/cache.py", "upsert") in seen  # the check finds what it should


def test_the_cli_reads_a_run_id_with_sql_in_it_as_a_plain_value(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from replenish.cli import main

    store = Store(sqlite_url)
    run_id = store.start_run(AS_OF, erp="sqlite:///erp.db", parameters={}, dry_run=True)
    store.finish_run(run_id, "completed", counts={})
    store.dispose()
    _canary(sqlite_url)
    for value in INJECTIONS[:3]:
        monkeypatch.setattr(sys, "argv", ["replenish", "plans", "--db", sqlite_url, "--run", value])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 1
        assert f"no run {value!r}" in capsys.readouterr().err
    _canary_alive(sqlite_url)
