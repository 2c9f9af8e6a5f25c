"""Idempotent set-up of the alert channels as Prefect blocks (docs/alerts.md).

From the environment (``REPLENISH_SLACK_WEBHOOK_URL``; ``REPLENISH_SMTP_HOST``,
``_PORT``, ``_USERNAME``, ``_PASSWORD``, ``_STARTTLS``) it creates or updates:

* a ``prefect_slack`` *Slack Incoming Webhook* block (``SlackWebhook``) named
  ``REPLENISH_SLACK_BLOCK`` (default ``replenish-slack``);
* a ``prefect_email`` *Email Server Credentials* block
  (``EmailServerCredentials``) named ``REPLENISH_EMAIL_BLOCK`` (default
  ``replenish-email``).

A block whose content already matches is left alone (``unchanged``); one that
differs is overwritten (``updated``); a channel the environment does not
configure is ``skipped`` (an existing block is never deleted). Run it as often
as you like: ``python -m deployments.blocks``. The flows use the blocks once
``REPLENISH_SLACK_BLOCK`` / ``REPLENISH_EMAIL_BLOCK`` name them in the
workers' environment. Secrets are never printed or logged.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from prefect_email import EmailServerCredentials
from prefect_slack import SlackWebhook

from replenish.notify.channels import (
    DEFAULT_EMAIL_BLOCK,
    DEFAULT_SLACK_BLOCK,
    ChannelSettings,
    slack_url,
    smtp_type_of,
)
from replenish.settings import Settings

__all__ = ["ensure_email_block", "ensure_notification_blocks", "ensure_slack_block", "main"]


async def _load(block_type: Any, name: str) -> Any | None:
    try:
        return await block_type.aload(name)
    except ValueError:  # "Unable to find block document named ..."
        return None


async def ensure_slack_block(url: str | None, name: str = DEFAULT_SLACK_BLOCK) -> str:
    """Create or update the Slack webhook block ``name`` with ``url``.

    Returns ``created``, ``updated``, ``unchanged`` or ``skipped`` (no URL)."""
    if not url:
        return "skipped"
    existing = await _load(SlackWebhook, name)
    if existing is not None and existing.url.get_secret_value() == url:
        return "unchanged"
    await SlackWebhook(url=url).asave(name, overwrite=True)
    return "created" if existing is None else "updated"


def _email_fields(block: Any) -> dict[str, Any]:
    server, kind = block.smtp_server, block.smtp_type
    return {
        "smtp_server": str(getattr(server, "value", server)),
        "smtp_type": str(getattr(kind, "name", kind)),
        "smtp_port": block.smtp_port,
        "username": block.username or None,
        "password": block.password.get_secret_value(),
        "verify": block.verify is not False,
    }


async def ensure_email_block(settings: Settings, name: str = DEFAULT_EMAIL_BLOCK) -> str:
    """Create or update the email server block ``name`` from the ``REPLENISH_SMTP_*``
    settings: host, port, STARTTLS (else SSL on port 465, else plain SMTP),
    username and password. Returns ``created``, ``updated``, ``unchanged`` or
    ``skipped`` (no ``REPLENISH_SMTP_HOST``)."""
    if not settings.smtp_host:
        return "skipped"
    password = settings.smtp_password
    wanted = EmailServerCredentials(
        smtp_server=settings.smtp_host,
        smtp_type=smtp_type_of(settings),
        smtp_port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=password.get_secret_value() if password is not None else "",
        verify=True,
    )
    existing = await _load(EmailServerCredentials, name)
    if existing is not None and _email_fields(existing) == _email_fields(wanted):
        return "unchanged"
    await wanted.asave(name, overwrite=True)
    return "created" if existing is None else "updated"


async def ensure_notification_blocks(
    settings: Settings | None = None, names: ChannelSettings | None = None
) -> dict[str, str]:
    """Both blocks from the environment; the status of each by channel and block
    name, e.g. ``{"slack replenish-slack": "created", "email replenish-email":
    "skipped"}``."""
    settings = settings or Settings()
    names = names or ChannelSettings()
    slack_name = names.slack_block or DEFAULT_SLACK_BLOCK
    email_name = names.email_block or DEFAULT_EMAIL_BLOCK
    return {
        f"slack {slack_name}": await ensure_slack_block(slack_url(settings), slack_name),
        f"email {email_name}": await ensure_email_block(settings, email_name),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    results = asyncio.run(ensure_notification_blocks())
    for what, status in results.items():
        print(f"block {what}: {status}")
    if any(status != "skipped" for status in results.values()):
        names = ChannelSettings()
        if not (names.slack_block or names.email_block):
            print(
                "set REPLENISH_SLACK_BLOCK / REPLENISH_EMAIL_BLOCK in the workers' environment "
                "to send alerts through these blocks"
            )


if __name__ == "__main__":
    main()
