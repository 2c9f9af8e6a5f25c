"""One exception hierarchy for the library.

Callers tell a *transient* fault (worth a retry: a dropped connection, a 5xx,
a 429) from a *data* or *configuration* fault (retrying cannot help: stop and
report). The CLI prints ``str(error)`` as one line and exits non-zero.
"""

from __future__ import annotations


class ReplenishError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigurationError(ReplenishError):
    """A setting is missing or malformed (a bad URL, a bad date, ...)."""


class SourceError(ReplenishError):
    """Reading a source failed."""


class SourceUnavailable(SourceError):
    """Transient: the source could not be reached or timed out. Retry."""


class ContractError(SourceError):
    """The source is reachable but does not provide the data contract:
    a table or a column is missing, or a value cannot be read."""


class DataQualityError(ReplenishError):
    """A dataset failed the validation gate as a whole (not row by row):
    the run stops before any order is written."""


class StoreError(ReplenishError):
    """The project's own database could not be read or written."""


class NotifyError(ReplenishError):
    """Sending an alert failed for good: the receiver rejected the message or
    the channel is misconfigured (a revoked webhook, a refused recipient)."""


class NotifyUnavailable(NotifyError):
    """Transient: the alert channel could not be reached, timed out, or asked
    us to slow down. Retry."""
