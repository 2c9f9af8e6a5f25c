"""Shared fixtures.

Server-backed tests use the PostgreSQL and MariaDB servers named by
``REPLENISH_TEST_POSTGRES_URL`` / ``REPLENISH_TEST_MARIADB_URL`` (defaults: the
local servers on 127.0.0.1). On a laptop without them those tests skip; with
``REPLENISH_REQUIRE_SERVERS=1`` (set by ``.ci/run``) a missing server fails the
run instead, so CI can never pass by skipping them.

Each test gets its own freshly created database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

# Offline, quiet and deterministic, before Prefect or GX are imported.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "REPLENISH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "REPLENISH_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
REQUIRE_SERVERS = os.environ.get("REPLENISH_REQUIRE_SERVERS", "") not in {"", "0", "false"}


def _server_database(admin_url: str, kind: str) -> Iterator[str]:
    """Create a throw-away database on the server at ``admin_url``; yield its URL."""
    name = f"replenish_t_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(
            admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
        )
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
    except Exception as e:  # the server is not there
        msg = f"{kind} server not available at {make_url(admin_url).render_as_string()}: {e}"
        if REQUIRE_SERVERS:
            pytest.fail(msg + " (REPLENISH_REQUIRE_SERVERS=1: server tests are mandatory)")
        pytest.skip(msg)
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as c:
            if kind == "PostgreSQL":
                c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a flow or slow test first (their order kept), the rest after.

    ``make test`` spreads modules over worker processes (pytest-xdist,
    ``--dist loadscope``) in this order: the long modules start at once and
    the short ones fill the gaps, instead of one long module running alone at
    the end."""
    heavy = {
        item.module.__name__
        for item in items
        if isinstance(item, pytest.Function)
        and (item.get_closest_marker("flow") or item.get_closest_marker("slow"))
    }
    items.sort(key=lambda item: 0 if getattr(item.module, "__name__", "") in heavy else 1)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _server_database(POSTGRES_URL, "PostgreSQL")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    yield from _server_database(MARIADB_URL, "MariaDB")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'db.sqlite').as_posix()}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'db.sqlite').as_posix()}"
    elif request.param == "postgresql":
        yield from _server_database(POSTGRES_URL, "PostgreSQL")
    else:
        yield from _server_database(MARIADB_URL, "MariaDB")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store on its two supported back ends: SQLite (default) and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'store.sqlite').as_posix()}"
    else:
        yield from _server_database(POSTGRES_URL, "PostgreSQL")


@pytest.fixture(scope="session", autouse=True)
def replenish_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test's default home (SQLite files, Data Docs, per-SKU reports) is
    a temporary folder, never ``replenish-data/`` of the checkout the tests run
    in: a flow test without its own ``REPLENISH_HOME`` left reports, Data Docs
    and a store there. Tests that need their own set it as before."""
    home = tmp_path_factory.mktemp("replenish-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPLENISH_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One real Prefect server (SQLite) for the whole session (~8 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
