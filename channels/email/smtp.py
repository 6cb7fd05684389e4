"""Sending one mail over SMTP with aiosmtplib, and what its failures mean for the outbox.

SMTP says in its reply codes whether to try again (RFC 5321 §4.2.1): 4xx is transient (mailbox busy,
greylisting, "try later"), 5xx permanent (no such user, message refused). A connection that fails or
drops, a timeout or a TLS handshake that fails is the relay being away: retried. A refused login is the
operator's to fix; it is retried too (the mail waits in the outbox until the settings are right), and
logged as an error so it is seen.
"""

from __future__ import annotations

import logging
import ssl
from email.message import EmailMessage

import aiosmtplib

from channels.email.settings import EmailSettings
from gateway.logs import log_event
from gateway.models import DeliveryError

log = logging.getLogger("channels.email.smtp")


# 530 authentication required, 535 credentials invalid, 538 encryption required for the login (RFC 4954):
# our set-up, not the mail, is what the server refuses.
LOGIN_CODES = frozenset({530, 534, 535, 538})


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(str(message).split())}"[:300]


def delivery_error(exc: Exception) -> DeliveryError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients[0] if exc.recipients else None
        code = refused.code if refused is not None else 550
        text = _reply(code, refused.message if refused is not None else "recipient refused")
        return DeliveryError(f"the mail server refused the recipient: {text}", permanent=code >= 500)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or (
        isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code in LOGIN_CODES
    ):
        log_event(log, "smtp_login_refused", logging.ERROR, code=exc.code, hint="check SMTP_USERNAME/SMTP_PASSWORD")
        said = _reply(exc.code, exc.message)
        return DeliveryError(f"the mail server refused our login ({said}); check the SMTP_ settings")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and not isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        what = "refused the mail" if exc.code >= 500 else "deferred the mail"
        return DeliveryError(f"the mail server {what}: {_reply(exc.code, exc.message)}", permanent=exc.code >= 500)
    if isinstance(exc, ssl.SSLError | aiosmtplib.SMTPException | OSError | TimeoutError):
        return DeliveryError(f"mail server unreachable: {type(exc).__name__}: {str(exc)[:200]}")
    return DeliveryError(f"{type(exc).__name__}: {str(exc)[:200]}")


async def send_mail(settings: EmailSettings, mail: EmailMessage, recipient: str, tls: ssl.SSLContext) -> None:
    """Hand `mail` to the SMTP relay for `recipient`; raises DeliveryError. The envelope sender is our own
    address, so bounces come back to the support mailbox, where the channel reads them."""
    assert settings.smtp_host is not None
    try:
        await aiosmtplib.send(
            mail,
            sender=settings.address,
            recipients=[recipient],
            hostname=settings.smtp_host,
            port=settings.smtp_port_used,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            tls_context=tls if settings.smtp_tls != "none" else None,
            timeout=settings.smtp_timeout_seconds,
        )
    except Exception as exc:
        raise delivery_error(exc) from exc
