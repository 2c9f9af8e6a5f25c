"""What every task module shares: settings and the retry predicate."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

from replenish.errors import NotifyUnavailable, SourceUnavailable
from replenish.settings import Settings

#: Task options for steps that must not hash their (large) inputs.
NO_CACHE_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def settings() -> Settings:
    """Connection settings, read at run time (environment, .env), never parameters."""
    return Settings()


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only faults a retry can cure (unreachable server, timeout, 5xx)."""
    try:
        state.result()
    except (SourceUnavailable, NotifyUnavailable):
        return True
    except Exception:
        return False
    return False
