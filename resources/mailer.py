"""Mail to people (invitations, password resets) through the configured SMTP server; without one,
the link is written to the log and handed back, so an operator can pass it on."""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from resources.settings import Settings, get_settings

logger = logging.getLogger("privatune.mail")

SMTP_TIMEOUT_S = 10
# RFC 8314: port 465 speaks TLS from the first byte (no STARTTLS).
IMPLICIT_TLS_PORT = 465


class MailError(Exception):
    """The SMTP server could not take the message; the message names the server and the step."""


@dataclass(frozen=True)
class Delivery:
    """What became of a message. `link` is set only when it was not sent: the caller shows it to
    the operator (never to the person who asked for it)."""

    sent: bool
    link: str | None = None


def send_mail(to: str, subject: str, body: str, link: str | None = None) -> Delivery:
    """Send a plain-text message (the link appended when the body does not contain it) through
    PRIVATUNE_SMTP_HOST; without a host, log it and return the link. MailError when the server
    fails."""
    settings = get_settings()
    if link and link not in body:
        body = f"{body.rstrip()}\n\n{link}\n"
    if not settings.smtp_host:
        # The link goes in its own field: log redaction passes a field named `link` through.
        logger.warning(
            "mail to %s not sent, no SMTP server is configured (PRIVATUNE_SMTP_HOST): %s",
            to,
            subject,
            extra={"mail_to": to, "subject": subject, "link": link},
        )
        return Delivery(sent=False, link=link)
    _send(settings, _message(settings, to, subject, body))
    logger.info("mail sent to %s: %s", to, subject, extra={"mail_to": to, "subject": subject})
    return Delivery(sent=True)


def _message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    # The sender's domain, not the host name: make_msgid's default asks the resolver for the FQDN.
    sender_domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "privatune"
    msg["Message-ID"] = make_msgid(domain=sender_domain)
    msg.set_content(body)
    return msg


def _send(settings: Settings, msg: EmailMessage) -> None:
    host, port = settings.smtp_host, settings.smtp_port
    step = "connecting"
    try:
        smtp: smtplib.SMTP
        if port == IMPLICIT_TLS_PORT:
            smtp = smtplib.SMTP_SSL(
                host, port, timeout=SMTP_TIMEOUT_S, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S)
        with smtp:
            if settings.smtp_starttls and port != IMPLICIT_TLS_PORT:
                step = "STARTTLS"
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                step = f"login as {settings.smtp_username}"
                smtp.login(settings.smtp_username, settings.smtp_password)
            step = "sending"
            smtp.send_message(msg)
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(
            f"mail server {host}:{port}: {step} failed: the server does not offer it ({exc}). "
            + _hint(step)
        ) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(
            f"mail server {host}:{port}: {step} failed: {exc!r}. " + _hint(step)
        ) from exc


def _hint(step: str) -> str:
    if step == "connecting":
        return "Check PRIVATUNE_SMTP_HOST and PRIVATUNE_SMTP_PORT, and that this host can reach it."
    if step == "STARTTLS":
        return (
            "Check that the server offers STARTTLS on this port with a certificate this host "
            "trusts; set PRIVATUNE_SMTP_STARTTLS=0 only for a server on a trusted local link."
        )
    if step.startswith("login"):
        return "Check PRIVATUNE_SMTP_USERNAME and PRIVATUNE_SMTP_PASSWORD."
    return "Check the server's log for why it refused the message (sender, recipient, size)."
