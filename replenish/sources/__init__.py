"""Where the data comes from: ERP profiles (SQLAlchemy) and, later, sales
channels (HTTP). Each profile reads its ERP's tables into the canonical
contract (``replenish.model``): the built-in ones by name, any other ERP
through a YAML file of queries (``yaml:PATH``, see
:mod:`replenish.sources.yaml_profile`)."""

from __future__ import annotations

from replenish.errors import ConfigurationError
from replenish.sources.erpnext import ErpNextErp
from replenish.sources.generic import GenericErp
from replenish.sources.odoo import OdooErp
from replenish.sources.yaml_profile import YamlErp, profile_path

PROFILES: dict[str, type[GenericErp]] = {
    "generic": GenericErp,
    "odoo": OdooErp,
    "erpnext": ErpNextErp,
}


def open_erp(url: str, *, profile: str = "generic") -> GenericErp:
    """The ERP reader of ``profile`` on the database at ``url``: a built-in
    profile name, or ``yaml:PATH`` (or a path ending in ``.yaml``/``.yml``)
    for a YAML profile of queries (:class:`YamlErp`)."""
    path = profile_path(profile)
    if path is not None:
        return YamlErp(url, path)
    try:
        cls = PROFILES[profile]
    except KeyError:
        raise ConfigurationError(
            f"unknown ERP profile {profile!r}; known profiles: {', '.join(sorted(PROFILES))}, "
            "or yaml:PATH for a YAML profile file"
        ) from None
    return cls(url)
