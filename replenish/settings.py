"""Connection settings (not business settings: those are flow parameters).

Priority, highest first: explicit keyword arguments (the CLI's flags), then
environment variables with the ``REPLENISH_`` prefix, then a ``.env`` file in
the working directory, then the defaults below. Secrets (passwords inside URLs,
SMTP password, Slack webhook URL) come only from the environment or Prefect
Secret blocks; they are never flow parameters and never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path("replenish-data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REPLENISH_", env_file=".env", extra="ignore", env_file_encoding="utf-8"
    )

    home: Path = Field(DEFAULT_HOME, description="Folder for the default SQLite files")
    erp_url: SecretStr | None = Field(None, description="SQLAlchemy URL of the ERP database")
    erp_profile: str = Field(
        "generic",
        description="How the ERP's tables map to the contract: generic, odoo, erpnext, "
        "or yaml:PATH to a YAML profile of queries",
    )
    db_url: SecretStr | None = Field(None, description="SQLAlchemy URL of replenish's own store")
    erp_url_block: str | None = Field(
        None,
        description="Prefect Secret block holding the ERP URL (when erp_url is unset)",
    )
    db_url_block: str | None = Field(
        None,
        description="Prefect Secret block holding the store URL (when db_url is unset)",
    )

    slack_webhook_url: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    alert_email_from: str = "replenish@localhost"
    alert_email_to: list[str] = Field(default_factory=list)

    # Scale-out (docs/operations.md): where the forecast and plan tasks run.
    task_runner: Literal["threads", "dask"] = Field(
        "threads",
        description="threads (default: a thread pool in the flow's process) or dask",
    )
    dask_address: str | None = Field(
        None, description="Scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786"
    )
    dask_workers: int | None = Field(
        None, ge=1, description="Workers of the local Dask cluster (default: one per CPU)"
    )
    dask_processes: bool = Field(
        True, description="Local Dask workers are processes (True) or threads (False)"
    )

    def erp(self) -> str:
        """The ERP URL: ``erp_url``, else the Secret block ``erp_url_block``,
        else the demo shop's SQLite file under ``home``."""
        if self.erp_url is not None:
            return self.erp_url.get_secret_value()
        if self.erp_url_block:
            return secret_block_value(self.erp_url_block, "REPLENISH_ERP_URL_BLOCK")
        return f"sqlite:///{(self.home / 'demo_erp.db').as_posix()}"

    def store(self) -> str:
        """The store URL: ``db_url``, else the Secret block ``db_url_block``,
        else the SQLite file under ``home``."""
        if self.db_url is not None:
            return self.db_url.get_secret_value()
        if self.db_url_block:
            return secret_block_value(self.db_url_block, "REPLENISH_DB_URL_BLOCK")
        return f"sqlite:///{(self.home / 'replenish.db').as_posix()}"


def secret_block_value(name: str, setting: str) -> str:
    """The value of the Prefect Secret block ``name`` (from the Prefect API of
    the environment: ``PREFECT_API_URL``). A missing block, or an API that
    cannot be reached, is a :class:`ConfigurationError` naming the block and
    the setting that asked for it; the value itself is never part of an error."""
    from prefect.blocks.system import Secret

    from replenish.errors import ConfigurationError

    try:
        block: Any = Secret.load(name)  # called from sync code: the block itself
    except ValueError as e:  # Prefect: "Unable to find block document named ..."
        raise ConfigurationError(
            f"{setting}={name!r}: no Prefect Secret block of that name "
            f"(create it: Secret(value=URL).save({name!r}), or in the UI: Blocks > Secret); {e}"
        ) from None
    except Exception as e:
        raise ConfigurationError(
            f"{setting}={name!r}: cannot load the Prefect Secret block: {type(e).__name__}: {e}"
        ) from None
    value = block.get()
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{setting}={name!r}: the Secret block must hold a database URL as text"
        )
    return value.strip()
