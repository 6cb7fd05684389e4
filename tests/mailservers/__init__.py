"""Real mail servers the email tests start: Dovecot (IMAP) and aiosmtpd (SMTP), both behind TLS made
with a test CA (certs.py)."""
