"""Email's settings, its check-config line, and how SMTP replies reach the outbox."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib
import pytest

from channels.email.bounces import bounce_reason
from channels.email.plugin import EMAIL
from channels.email.smtp import delivery_error
from gateway.settings import Settings, SettingsError, load_settings

BASE = {"email_from": "Shop Support <Support@Shop.example>", "smtp_host": "smtp.shop.example"}
IMAP = {"imap_host": "imap.shop.example", "imap_username": "support@shop.example", "imap_password": "app-password"}


def report(**values: str) -> str:
    core = Settings(_env_file=None, public_base_url="https://help.example.com")
    return EMAIL.describe(EMAIL.read(core, values), core) or EMAIL.not_configured


def test_not_configured_until_email_from_is_set() -> None:
    assert report() == EMAIL.not_configured
    with pytest.raises(SettingsError, match="EMAIL_FROM: must be set to use email"):
        report(smtp_host="smtp.shop.example")


def test_check_config_says_how_mail_goes_out_and_comes_in() -> None:
    line = report(**BASE, **IMAP, email_inbound_secret="s3cret", smtp_username="u", smtp_password="p")
    assert line.startswith("from Shop Support <Support@Shop.example>; sends via smtp.shop.example:587 (starttls as u)")
    assert "reads INBOX of support@shop.example on imap.shop.example:993 (tls; IDLE, else every 60 s" in line
    assert "processed mail flagged read" in line
    assert line.endswith("forwarded mail at https://help.example.com/email/inbound")
    moved = report(**BASE, **IMAP, imap_processed_folder="Done", smtp_tls="tls")
    assert "smtp.shop.example:465 (tls)" in moved and "processed mail moved to Done" in moved


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"email_from": "Support"}, "EMAIL_FROM: must be one address"),
        ({"email_from": "a@x.example, b@x.example"}, "EMAIL_FROM: must be one address"),
        ({"smtp_host": ""}, "SMTP_HOST: must be set"),
        ({"imap_host": ""}, "IMAP_HOST or EMAIL_INBOUND_SECRET: mail needs a way in"),
        ({"imap_password": ""}, "IMAP_USERNAME and IMAP_PASSWORD: must be set"),
        ({"smtp_username": "u"}, "SMTP_USERNAME and SMTP_PASSWORD: set both"),
        ({"smtp_tls": "ssl"}, "SMTP_TLS: Input should be 'starttls', 'tls' or 'none'"),
        ({"imap_tls": "none"}, "IMAP_TLS: 'none' would send IMAP_PASSWORD unencrypted"),
        ({"imap_processed_folder": "INBOX"}, "IMAP_PROCESSED_FOLDER: must differ from IMAP_FOLDER"),
        ({"email_tls_ca_file": "/no/such/ca.pem"}, "EMAIL_TLS_CA_FILE: is not a file"),
        ({"smtp_port": "0"}, "SMTP_PORT: Input should be greater than or equal to 1"),
    ],
)
def test_wrong_values_are_named_by_their_variable(values: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as error:
        report(**{**BASE, **IMAP, **values})
    assert any(p.startswith(problem) for p in error.value.problems), error.value.problems


def test_passwords_are_never_echoed_in_a_settings_error() -> None:
    with pytest.raises(SettingsError) as error:
        report(**BASE, **IMAP, smtp_password={"not": "a string"})  # type: ignore[arg-type]
    assert "not" not in str(error.value.problems)


def test_settings_come_from_the_env_file_by_their_full_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "gateway.env"
    env.write_text("EMAIL_FROM=help@shop.example\nSMTP_HOST=relay.shop.example\nEMAIL_INBOUND_SECRET=x\n")
    monkeypatch.setenv("GATEWAY_ENV_FILE", str(env))
    core = load_settings()
    line = EMAIL.describe(EMAIL.read(core), core) or ""
    assert line.startswith("from help@shop.example; sends via relay.shop.example:587")


def _refused(code: int, text: str) -> aiosmtplib.SMTPRecipientRefused:
    return aiosmtplib.SMTPRecipientRefused(code, text, "dana@customer.example")


@pytest.mark.parametrize(
    ("error", "retried", "words"),
    [
        (aiosmtplib.SMTPRecipientsRefused([_refused(550, "5.1.1 unknown")]), False, "550"),
        (aiosmtplib.SMTPRecipientsRefused([_refused(450, "4.2.0 busy")]), True, "450"),
        (aiosmtplib.SMTPDataError(451, "4.3.0 try later"), True, "deferred"),
        (aiosmtplib.SMTPDataError(554, "5.7.1 rejected as spam"), False, "refused the mail"),
        (aiosmtplib.SMTPAuthenticationError(535, "5.7.8 bad credentials"), True, "refused our login"),
        (aiosmtplib.SMTPSenderRefused(530, "5.7.0 Authentication required", "s@x"), True, "refused our login"),
        (aiosmtplib.SMTPConnectError("Error connecting to relay on port 587"), True, "unreachable"),
        (aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"), True, "unreachable"),
        (aiosmtplib.SMTPException("SMTP STARTTLS extension not supported by server."), True, "unreachable"),
        (TimeoutError(), True, "unreachable"),
    ],
)
def test_smtp_replies_map_to_retry_or_give_up(error: Exception, retried: bool, words: str) -> None:
    mapped = delivery_error(error)
    assert mapped.permanent is not retried and words in mapped.reason, mapped.reason


def test_a_bounce_reason_reads_the_status_and_the_remote_servers_words() -> None:
    status = "Final-Recipient: rfc822; x@y\nAction: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 5.2.2 quota"
    assert bounce_reason("", status) == "the mailbox is full: 552 5.2.2 quota"
    prose = "Hi. This is the qmail-send program.\n<x@y>:\n550 5.1.1 sorry, no mailbox here by that name\n"
    assert bounce_reason(prose, "") == "550 5.1.1 sorry, no mailbox here by that name"
    assert bounce_reason("It did not work.", "") == "the receiving server gave no reason"
