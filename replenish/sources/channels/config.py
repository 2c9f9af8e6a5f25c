"""Channel configuration: one YAML file per connected shop.

``load_channel(path)`` reads the file, picks the model from its ``kind``
(``shopify`` or ``woocommerce``) and validates it; a bad file raises
:class:`~replenish.errors.ConfigurationError` naming the file and the first
bad key (the same reader as the CSV channel mappings, :func:`load_yaml_model`).

Credentials are never in the file: it names the *environment variables* that
hold them (``token_env``, ``consumer_key_env``, ``consumer_secret_env``); they
are read when a sync starts (:func:`read_secret`) and never written to a log,
an error message or a ``repr``.

See ``docs/channels.md`` and ``config/channels/*.example.yaml``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from replenish.errors import ConfigurationError
from replenish.sources.csv_export import load_yaml_model

__all__ = [
    "SALES_STATUSES",
    "ChannelConfig",
    "ShopifyConfig",
    "WooCommerceConfig",
    "load_channel",
    "read_secret",
]

#: The contract's ``sales_order_lines.status`` values a channel produces.
SALES_STATUSES = ("open", "shipped", "cancelled")
SalesStatus = Literal["open", "shipped", "cancelled"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Shopify access tokens (shpat_, shpca_, shppa_, shpss_) and WooCommerce keys
# (ck_, cs_) pasted where the *name* of a variable belongs
_LOOKS_LIKE_SECRET = re.compile(r"^(shp[a-z]{2}_|ck_|cs_)[0-9a-f]{16,}$", re.IGNORECASE)
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str) -> str:
    # never echo the value: if it is not a name it may well be the secret itself
    if _LOOKS_LIKE_SECRET.match(value):
        raise ValueError(
            "must be the NAME of an environment variable holding the credential, "
            "not the credential itself (remove it from the file and rotate it)"
        )
    if not _ENV_NAME.match(value):
        raise ValueError(
            "must be the name of an environment variable (letters, digits, '_'; "
            "e.g. SHOPIFY_ACCESS_TOKEN)"
        )
    return value


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ChannelConfig(_Config):
    """Settings every channel has. ``name`` becomes ``sales_order_lines.channel``
    and the key of the channel's watermark."""

    kind: str

    #: sales_order_lines.channel (≤ 32 characters): letters, digits, '_', '-', '.'
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    #: the shop's URL: https://{shop}.myshopify.com, or the WordPress site URL
    base_url: str
    #: location_id of every line (unless mapped otherwise, see ShopifyConfig.locations)
    location_id: str = Field(default="default", min_length=1, max_length=64)
    #: seconds for each of connect / read / write / pool of every request
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: retries of one request after a transient fault (429, 5xx, timeout, dropped connection)
    max_retries: int = Field(default=5, ge=0, le=20)
    #: first wait after a 5xx / timeout / connection fault; doubled each retry
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    max_backoff_seconds: float = Field(default=30.0, ge=0, le=600)
    #: a 429's Retry-After is honoured up to this many seconds
    max_retry_after_seconds: float = Field(default=60.0, ge=0, le=3600)
    #: an incremental sync asks for orders updated since (watermark - overlap):
    #: late commits and clock skew cannot make it miss an order (re-read orders
    #: are de-duplicated downstream on (channel, order_id, line_no))
    overlap_seconds: float = Field(default=60.0, ge=0, le=7 * 86400)

    @field_validator("base_url")
    @classmethod
    def _shop_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        url = value.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host, e.g. https://shop.example.com")
        if parts.username or parts.password:
            raise ValueError(
                "must not contain credentials: name environment variables instead "
                "(see docs/channels.md)"
            )
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError(
                "must use https (credentials are sent with every request); "
                "plain http is accepted for localhost only"
            )
        return url.rstrip("/")

    def secret_env_names(self) -> tuple[str, ...]:
        """The environment variables this channel reads its credentials from."""
        raise NotImplementedError  # pragma: no cover


class ShopifyConfig(ChannelConfig):
    """A Shopify store read through the Admin REST API (``read_orders`` scope)."""

    kind: Literal["shopify"] = "shopify"

    #: Admin API version in the path /admin/api/{version}/orders.json: YYYY-01/04/07/10
    api_version: str = Field(pattern=r"^(\d{4}-(01|04|07|10)|unstable)$")
    #: environment variable holding the Admin API access token (X-Shopify-Access-Token)
    token_env: str = "SHOPIFY_ACCESS_TOKEN"
    #: orders per page (Shopify's maximum is 250)
    page_size: int = Field(default=250, ge=1, le=250)
    #: Shopify location id -> contract location_id (fulfilment / order / restock
    #: locations); unmapped or absent locations fall back to ``location_id``
    locations: dict[str, Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=dict
    )
    #: slow down when fewer calls than this are left in the API call bucket
    #: (X-Shopify-Shop-Api-Call-Limit); 0 turns the pacing off
    call_limit_headroom: int = Field(default=4, ge=0)
    #: calls per second the bucket drains (2 on standard plans, 20 on Shopify Plus)
    call_limit_leak_rate: float = Field(default=2.0, gt=0)

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, value: str) -> str:
        return _env_name(value)

    @field_validator("locations", mode="before")
    @classmethod
    def _location_keys(cls, value: Any) -> Any:
        # YAML reads an unquoted 905684977 as an int: location ids are text here
        if isinstance(value, Mapping):
            return {str(k): v for k, v in value.items()}
        return value

    def secret_env_names(self) -> tuple[str, ...]:
        return (self.token_env,)


class WooCommerceConfig(ChannelConfig):
    """A WooCommerce shop read through the WC REST API v3 (keys with Read access)."""

    kind: Literal["woocommerce"] = "woocommerce"

    #: environment variables holding the REST API consumer key / secret (HTTP basic auth)
    consumer_key_env: str = "WOOCOMMERCE_CONSUMER_KEY"
    consumer_secret_env: str = "WOOCOMMERCE_CONSUMER_SECRET"
    #: orders per page (the REST API's maximum is 100)
    page_size: int = Field(default=100, ge=1, le=100)
    #: order status -> contract status, for custom statuses (plugins) or to
    #: override a default (docs/channels.md lists the defaults)
    status_map: dict[str, SalesStatus] = Field(default_factory=dict)
    #: WooCommerce does not report whether refunded items went back to stock
    #: ("Restock refunded items", on by default): returns are restockable if true
    refunds_restock: bool = True
    #: a line item without SKU is rejected ('reject'), or gets the SKU
    #: 'wc-{variation_id or product_id}' ('product_id')
    missing_sku: Literal["reject", "product_id"] = "reject"

    @field_validator("consumer_key_env", "consumer_secret_env")
    @classmethod
    def _key_env(cls, value: str) -> str:
        return _env_name(value)

    def secret_env_names(self) -> tuple[str, ...]:
        return (self.consumer_key_env, self.consumer_secret_env)


class _Kind(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: Literal["shopify", "woocommerce"]


def load_channel(path: str | Path) -> ShopifyConfig | WooCommerceConfig:
    """The channel configuration in the YAML file at ``path``.

    Raises :class:`ConfigurationError` naming the file and the first bad key
    (``channel config/channels/shop.yaml: api_version: String should match
    pattern ...``).
    """
    kind = load_yaml_model(path, _Kind, "channel").kind
    if kind == "shopify":
        return load_yaml_model(path, ShopifyConfig, "channel")
    return load_yaml_model(path, WooCommerceConfig, "channel")


def read_secret(config: ChannelConfig, env_name: str, env: Mapping[str, str] | None = None) -> str:
    """The value of the environment variable ``env_name`` (a credential of
    ``config``). Raises :class:`ConfigurationError` naming the variable, never
    showing a value, when it is unset or blank."""
    value = (os.environ if env is None else env).get(env_name, "")
    if not value.strip():
        raise ConfigurationError(
            f"{config.kind} channel {config.name!r}: environment variable {env_name} "
            "is not set (it must hold the channel's credential; see docs/channels.md)"
        )
    return value.strip()
