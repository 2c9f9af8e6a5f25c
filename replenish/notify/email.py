"""Alerts by email: one ``multipart/alternative`` message (text + HTML) over SMTP.

Subject: ``[replenish] 3 critical, 5 warning — nightly 2026-11-21`` for a
digest, ``[replenish] critical: SKU-1 @ WH1: stockout before the next delivery
— nightly 2026-11-21`` for a message of one alert. The
message carries ``Date``, ``Message-ID`` and ``Auto-Submitted:
auto-generated`` (RFC 3834: auto-responders must not answer it).

Transport: plain SMTP, optionally upgraded with ``STARTTLS``, or implicit TLS
(SMTPS) when ``implicit_tls`` is set (by default: when the port is 465);
``AUTH`` when a username is given. TLS certificates are verified unless
``verify=False`` (the ``verify`` field of a Prefect ``EmailServerCredentials``
block). Failures:

* the server cannot be reached, times out, drops the connection, or answers
  with a 4xx (greylisting, "try again later") →
  :class:`~replenish.errors.NotifyUnavailable` (retry);
* a 5xx (recipient or sender refused, authentication failed, message
  rejected), STARTTLS/AUTH not offered, a TLS certificate problem →
  :class:`~replenish.errors.NotifyError` (do not retry: fix the settings).

No retry happens here: a retried send could deliver the message twice, so the
caller (a Prefect task) owns that decision. The password never appears in an
error, a ``repr`` or a log line.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from replenish.errors import ConfigurationError, NotifyError, NotifyUnavailable
from replenish.notify.alerts import (
    RESOLVED,
    Alert,
    one_line,
    render_html,
    render_text,
    summarize,
)

__all__ = ["EmailNotifier"]


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {one_line(text)}"[:300]


def _is_transient(code: int) -> bool:
    return 400 <= code < 500


def _wire_bytes(message: EmailMessage) -> bytes:
    """The message as sent: CRLF line ends, headers folded only past RFC 5322's
    hard limit of 998 characters. (Python's folding at 78 puts two spaces
    where a long subject with a non-ASCII character — the "—" of ours — is
    folded; the parts' bodies were encoded when they were set, unaffected.)"""
    return message.as_bytes(policy=message.policy.clone(max_line_length=998, linesep="\r\n"))


class EmailNotifier:
    """Sends a batch of alerts as one email to ``recipients``."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
        implicit_tls: bool | None = None,
        subject_prefix: str = "[replenish]",
        local_hostname: str | None = None,
        verify: bool = True,
    ) -> None:
        recipients = [address.strip() for address in recipients if address.strip()]
        if not host:
            raise ConfigurationError("email alerts need an SMTP host")
        if not recipients:
            raise ConfigurationError("email alerts need at least one recipient")
        if not parseaddr(sender)[1]:
            raise ConfigurationError("email alerts need a sender address")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = recipients
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout
        self.implicit_tls = (port == 465 and not starttls) if implicit_tls is None else implicit_tls
        self.subject_prefix = subject_prefix
        self.local_hostname = local_hostname
        self.verify = verify

    def __repr__(self) -> str:
        return (
            f"EmailNotifier(host={self.host!r}, port={self.port}, sender={self.sender!r}, "
            f"recipients={self.recipients!r}, username={self.username!r}, "
            f"password={'***' if self._password else None})"
        )

    # ----------------------------------------------------------------- message

    def subject(self, alerts: Sequence[Alert], heading: str) -> str:
        """``[replenish] 3 critical, 5 warning — nightly 2026-11-21``; for one
        alert ``[replenish] critical: <title> — nightly 2026-11-21`` (``worse
        critical``, ``resolved`` as the case may be)."""
        prefix = f"{self.subject_prefix} " if self.subject_prefix else ""
        if len(alerts) == 1:
            (alert,) = alerts
            label = alert.group if alert.change != "worse" else f"worse {alert.severity}"
            title = alert.title
            if alert.change == RESOLVED and title.lower().startswith("resolved: "):
                title = title[len("resolved: ") :]
            return one_line(f"{prefix}{label}: {title} — {heading}")
        return one_line(f"{prefix}{summarize(alerts)} — {heading}")

    def build_message(self, alerts: Sequence[Alert], *, heading: str) -> EmailMessage:
        """The message :meth:`send` would send (text part first, HTML second)."""
        message = EmailMessage()
        message["Subject"] = self.subject(alerts, heading)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=True)
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "replenish.localhost"
        message["Message-ID"] = make_msgid(idstring="replenish", domain=domain)
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        message.set_content(render_text(alerts, heading), cte="quoted-printable")
        message.add_alternative(render_html(alerts, heading), subtype="html")
        return message

    # ----------------------------------------------------------------- sending

    def send(self, alerts: Sequence[Alert], *, heading: str) -> None:
        if not alerts:
            return
        message = self.build_message(alerts, heading=heading)
        where = f"SMTP server {self.host}:{self.port}"
        try:
            refused = self._deliver(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(
                f"{address}: {_reply(code, reply)}"
                for address, (code, reply) in exc.recipients.items()
            )
            error = NotifyUnavailable if codes and all(map(_is_transient, codes)) else NotifyError
            raise error(f"{where} refused every recipient: {detail}") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(
                f"{where} rejected the login of user {self.username!r}: "
                f"{_reply(exc.smtp_code, exc.smtp_error)}"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise NotifyError(f"{where} does not support {one_line(str(exc))[:200]}") from None
        except smtplib.SMTPServerDisconnected as exc:
            raise NotifyUnavailable(
                f"{where} closed the connection: {one_line(str(exc))[:200]}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            # SMTPSenderRefused, SMTPDataError, SMTPConnectError, HELO errors, ...
            error = NotifyUnavailable if _is_transient(exc.smtp_code) else NotifyError
            raise error(
                f"{where} answered {_reply(exc.smtp_code, exc.smtp_error)} ({type(exc).__name__})"
            ) from None
        except smtplib.SMTPException as exc:
            raise NotifyError(
                f"{where}: {type(exc).__name__}: {one_line(str(exc))[:200]}"
            ) from None
        except ssl.SSLError as exc:
            # before OSError (SSLError is one): a certificate or protocol
            # problem is a configuration fault, not a passing one
            raise NotifyError(f"TLS with {where} failed: {exc.reason or exc}") from None
        except TimeoutError:
            raise NotifyUnavailable(f"{where} timed out after {self.timeout:g} s") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise NotifyUnavailable(f"{where} cannot be reached: {reason}") from None
        if refused:
            detail = "; ".join(
                f"{address}: {_reply(code, reply)}" for address, (code, reply) in refused.items()
            )
            raise NotifyError(
                f"{where} delivered the alerts to {len(self.recipients) - len(refused)} of "
                f"{len(self.recipients)} recipient(s) and refused: {detail}"
            )

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _deliver(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(
                timeout=self.timeout,
                local_hostname=self.local_hostname,
                context=self._tls_context(),
            )
        else:
            smtp = smtplib.SMTP(timeout=self.timeout, local_hostname=self.local_hostname)
        try:
            code, reply = smtp.connect(self.host, self.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, reply)
            if self.starttls and not self.implicit_tls:
                smtp.ehlo()
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self._password or "")
            return smtp.sendmail(self.sender, self.recipients, _wire_bytes(message))
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
