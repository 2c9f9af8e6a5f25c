"""Where alerts go: Slack and email channels from settings or Prefect blocks.

Configuration (docs/alerts.md, "Channels"), highest priority first:

1. Prefect blocks, named by ``REPLENISH_SLACK_BLOCK`` (a ``prefect_slack``
   *Slack Incoming Webhook* block) and ``REPLENISH_EMAIL_BLOCK`` (a
   ``prefect_email`` *Email Server Credentials* block). The tasks load them
   (this package imports no Prefect) and build the channels with
   :func:`email_from_server` and :class:`~replenish.notify.slack.SlackWebhookNotifier`.
2. The environment: ``REPLENISH_SLACK_WEBHOOK_URL``; ``REPLENISH_SMTP_HOST``,
   ``_PORT``, ``_USERNAME``, ``_PASSWORD``, ``_STARTTLS``.

Email recipients and sender always come from ``REPLENISH_ALERT_EMAIL_TO`` and
``REPLENISH_ALERT_EMAIL_FROM`` (a credentials block has no recipients).
A channel that is configured but cannot be built (a block that does not load)
becomes an :class:`UnavailableChannel`: it fails at every send, so the failure
is reported per run and the notices stay pending instead of being lost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from replenish.errors import ConfigurationError, NotifyError
from replenish.notify.alerts import Alert
from replenish.notify.email import EmailNotifier
from replenish.settings import Settings

__all__ = [
    "DEFAULT_EMAIL_BLOCK",
    "DEFAULT_SLACK_BLOCK",
    "SMTP_TYPES",
    "ChannelSettings",
    "UnavailableChannel",
    "email_from_server",
    "email_from_settings",
    "slack_url",
    "smtp_type_of",
]

#: Block names ``deployments/blocks.py`` uses when the settings name none.
DEFAULT_SLACK_BLOCK = "replenish-slack"
DEFAULT_EMAIL_BLOCK = "replenish-email"

#: ``prefect_email`` SMTP types and their default ports.
SMTP_TYPES: dict[str, int] = {"SSL": 465, "STARTTLS": 587, "INSECURE": 25}

Logger = logging.Logger | logging.LoggerAdapter[Any]


class ChannelSettings(BaseSettings):
    """The Prefect blocks alerts are sent through (names, not secrets)."""

    model_config = SettingsConfigDict(
        env_prefix="REPLENISH_", env_file=".env", extra="ignore", env_file_encoding="utf-8"
    )

    slack_block: str | None = Field(
        None, description="Name of a prefect_slack SlackWebhook block (Slack Incoming Webhook)"
    )
    email_block: str | None = Field(
        None, description="Name of a prefect_email EmailServerCredentials block"
    )


class UnavailableChannel:
    """A configured channel that could not be built: every non-empty send
    raises :class:`~replenish.errors.NotifyError` with ``reason``."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def send(self, alerts: Sequence[Alert], *, heading: str) -> None:
        if alerts:
            raise NotifyError(self.reason)

    def __repr__(self) -> str:
        return f"UnavailableChannel({self.name!r}, {self.reason!r})"


def slack_url(settings: Settings) -> str | None:
    """``REPLENISH_SLACK_WEBHOOK_URL`` stripped, or None."""
    if settings.slack_webhook_url is None:
        return None
    return settings.slack_webhook_url.get_secret_value().strip() or None


def _recipients(settings: Settings, logger: Logger, where: str) -> list[str] | None:
    if settings.alert_email_to:
        return list(settings.alert_email_to)
    logger.warning(f"email alerts are off: {where} is set but REPLENISH_ALERT_EMAIL_TO is empty")
    return None


def email_from_settings(settings: Settings, logger: Logger) -> EmailNotifier | None:
    """The email channel of the environment, or None (a half-configured one
    is skipped with a warning naming the missing setting, never a secret)."""
    if not settings.smtp_host:
        if settings.alert_email_to:
            logger.warning(
                "email alerts are off: REPLENISH_ALERT_EMAIL_TO is set but "
                "REPLENISH_SMTP_HOST is not"
            )
        return None
    recipients = _recipients(settings, logger, "REPLENISH_SMTP_HOST")
    if recipients is None:
        return None
    password = settings.smtp_password
    return EmailNotifier(
        settings.smtp_host,
        settings.smtp_port,
        settings.alert_email_from,
        recipients,
        username=settings.smtp_username or None,
        password=password.get_secret_value() if password is not None else None,
        starttls=settings.smtp_starttls,
        timeout=settings.smtp_timeout,
    )


def smtp_type_of(settings: Settings) -> str:
    """The ``prefect_email`` SMTP type matching the environment: STARTTLS when
    ``REPLENISH_SMTP_STARTTLS``, SSL on port 465, INSECURE (plain SMTP) otherwise."""
    if settings.smtp_starttls:
        return "STARTTLS"
    return "SSL" if settings.smtp_port == 465 else "INSECURE"


def email_from_server(
    *,
    host: str,
    smtp_type: str,
    port: int | None,
    username: str | None,
    password: str | None,
    verify: bool,
    settings: Settings,
    logger: Logger,
    block: str = "the email block",
) -> EmailNotifier | None:
    """The email channel of an *Email Server Credentials* block's fields:
    SSL → implicit TLS, STARTTLS → upgrade, INSECURE → plain SMTP; ``port``
    None → the type's default port (:data:`SMTP_TYPES`). Sender, recipients
    and timeout come from ``settings``; None (with a warning) without
    recipients."""
    kind = smtp_type.upper()
    if kind not in SMTP_TYPES:
        raise ConfigurationError(
            f"{block}: smtp_type must be one of {', '.join(SMTP_TYPES)}, got {smtp_type!r}"
        )
    recipients = _recipients(settings, logger, f"REPLENISH_EMAIL_BLOCK ({block})")
    if recipients is None:
        return None
    return EmailNotifier(
        host,
        port or SMTP_TYPES[kind],
        settings.alert_email_from,
        recipients,
        username=username or None,
        password=password or None,
        starttls=kind == "STARTTLS",
        implicit_tls=kind == "SSL",
        timeout=settings.smtp_timeout,
        verify=verify,
    )
