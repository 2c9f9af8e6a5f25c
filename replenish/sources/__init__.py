"""Where the data comes from: ERP profiles (SQLAlchemy) and, later, sales
channels (HTTP). Each profile reads its ERP's tables into the canonical
contract (``replenish.model``)."""

from __future__ import annotations

from replenish.errors import ConfigurationError
from replenish.sources.erpnext import ErpNextErp
from replenish.sources.generic import GenericErp
from replenish.sources.odoo import OdooErp

PROFILES: dict[str, type[GenericErp]] = {
    "generic": GenericErp,
    "odoo": OdooErp,
    "erpnext": ErpNextErp,
}


def open_erp(url: str, *, profile: str = "generic") -> GenericErp:
    """The ERP reader of ``profile`` on the database at ``url``."""
    try:
        cls = PROFILES[profile]
    except KeyError:
        raise ConfigurationError(
            f"unknown ERP profile {profile!r}; known profiles: {', '.join(sorted(PROFILES))}"
        ) from None
    return cls(url)
