"""Database connections shared by the ERP sources and the store.

One place turns a SQLAlchemy URL into an engine and a driver exception into
the library's error hierarchy, so that a user sees one clear line ("cannot
reach ... : connection refused") instead of a traceback, and so that retries
happen on transient faults only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, exc
from sqlalchemy.engine import URL, make_url

from replenish.errors import ConfigurationError, ReplenishError


def parse_url(url: str, *, what: str) -> URL:
    """Parse ``url``; a malformed one is a :class:`ConfigurationError`."""
    try:
        return make_url(url)
    except exc.ArgumentError as e:
        raise ConfigurationError(f"{what}: not a database URL: {url!r} ({e})") from None


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden: the only form that may be logged."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except exc.ArgumentError:
        return "<malformed URL>"
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The file of a file-backed SQLite URL, else None."""
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return None
    return Path(url.database)


def make_engine(url: str, *, what: str, must_exist: bool = False) -> Engine:
    """An engine for ``url``.

    ``must_exist``: for a SQLite file, refuse a file that is not there
    (SQLite would silently create an empty database, which then looks like an
    ERP without tables).
    """
    parsed = parse_url(url, what=what)
    path = sqlite_path(parsed)
    if path is not None:
        if must_exist and not path.exists():
            raise ConfigurationError(f"{what}: SQLite file not found: {path}")
        if not must_exist:
            path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, object] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    elif parsed.get_backend_name() in {"postgresql", "mysql", "mariadb"}:
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return create_engine(parsed, **kwargs)
    except (exc.NoSuchModuleError, ModuleNotFoundError) as e:
        raise ConfigurationError(
            f"{what}: no database driver for {parsed.drivername!r} ({e}); "
            "use sqlite:///file.db, postgresql+psycopg://... or mysql+pymysql://..."
        ) from None


def describe_db_error(e: BaseException) -> str:
    """First line of a driver error, without SQL or parameters."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def is_transient_db_error(e: BaseException) -> bool:
    """True for faults a retry can cure: the server unreachable, the
    connection dropped, a lock timeout. Missing tables are not transient even
    though some drivers raise them as OperationalError."""
    if isinstance(e, exc.DBAPIError) and e.connection_invalidated:
        return True
    if isinstance(e, exc.DisconnectionError | exc.TimeoutError):
        return True
    if isinstance(e, exc.OperationalError | exc.InterfaceError):
        msg = describe_db_error(e).lower()
        permanent = (
            "no such table",
            "no such column",
            "doesn't exist",
            "does not exist",
            "unknown column",
            "unknown database",
            "access denied",
            "authentication failed",
            "password",
        )
        return not any(p in msg for p in permanent)
    return False


def is_write_conflict(e: BaseException) -> bool:
    """True when a transaction lost a race with a concurrent one and can
    simply be run again: a unique key taken first by the other
    (IntegrityError), a deadlock (MariaDB/MySQL 1213, PostgreSQL 40P01) or a
    serialization failure (PostgreSQL 40001)."""
    if isinstance(e, exc.IntegrityError):
        return True
    if not isinstance(e, exc.OperationalError | exc.DBAPIError):
        return False
    orig = getattr(e, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in {"40P01", "40001"}:
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in (1213, 1205):  # deadlock, lock wait timeout
        return True
    return "deadlock" in describe_db_error(e).lower()


@contextmanager
def translate_errors(
    what: str, url: str, transient: type[ReplenishError], permanent: type[ReplenishError]
) -> Iterator[None]:
    """Turn SQLAlchemy errors into the library's: ``transient`` for faults a
    retry can cure, ``permanent`` for the rest; the message names ``what``
    and the URL without its password."""
    try:
        yield
    except ReplenishError:
        raise
    except exc.SQLAlchemyError as e:
        cls = transient if is_transient_db_error(e) else permanent
        raise cls(f"{what} at {safe_url(url)}: {describe_db_error(e)}") from e
