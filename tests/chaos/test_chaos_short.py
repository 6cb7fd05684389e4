"""The crash test's short form in `make test`: 2 gateway kills and 1 database kill under web chat load,
with 2 Telegram customers long-polled through the fake Bot API, 2 SMS customers through the fake
Twilio API and 2 email customers mailing a real IMAP mailbox (Dovecot), answered through a real SMTP server.

The long form is `make chaos` (tests/chaos/run_chaos.py, docs/reliability.md); both run the same checks.
"""

from __future__ import annotations

from pathlib import Path

from tests.chaos.run_chaos import ChaosConfig, run


async def test_kills_lose_duplicate_or_leave_unanswered_nothing(tmp_path: Path) -> None:
    config = ChaosConfig(
        customers=3,
        telegram_customers=2,
        telegram_max_messages=60,  # they talk until the last kill has recovered, so every kill meets Telegram traffic
        sms_customers=2,
        sms_max_messages=60,  # likewise for SMS
        email_customers=2,
        email_max_messages=60,  # likewise for email
        gateway_kills=2,
        db_kills=1,
        gap_seconds=(2.0, 4.0),
        max_messages=15,
        settle_seconds=30.0,
        timeout_seconds=85.0,
        work_dir=tmp_path,
    )
    result = await run(config)
    print(result.summary())
    assert result.kills["gateway"] == 2 and result.kills["database"] == 1, result.summary()
    assert result.sent > 0 and result.acked > 0, result.summary()
    assert result.telegram_sent > 0 and result.telegram.delivered > 0, result.summary()
    assert result.sms_acked > 0 and result.sms.delivered > 0, result.summary()
    assert result.sms.ok, result.summary()
    assert result.email_delivered > 0 and result.email.answered_by_mail > 0, result.summary()
    assert result.email.delivered > 0 and result.email.stored_replies > 0, result.summary()
    assert result.email.ok, result.summary()
    assert result.ok, result.summary()
