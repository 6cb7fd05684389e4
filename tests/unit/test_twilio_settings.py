"""Twilio's settings, its check-config line, and how its errors reach the outbox and the agents."""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioRestException

from channels.twilio.errors import delivery_error, meaning
from channels.twilio.plugin import TWILIO
from gateway.settings import Settings, SettingsError

SID = "AC" + "0123456789abcdef" * 2
BASE = {"twilio_account_sid": SID, "twilio_auth_token": "secret-token"}


def report(**values: str) -> str:
    core = Settings(_env_file=None, public_base_url=values.pop("public_base_url", "https://help.example.com"))
    return TWILIO.describe(TWILIO.read(core, values), core) or TWILIO.not_configured


def test_not_configured_until_a_sender_is_set() -> None:
    assert report() == "not connected (set TWILIO_SMS_FROM or TWILIO_WHATSAPP_FROM; see docs/twilio.md)"
    assert report(**BASE) == TWILIO.not_configured


def test_check_config_says_which_channels_are_on_and_where_twilio_posts() -> None:
    line = report(**BASE, twilio_sms_from="+15551230000")
    assert line.startswith("SMS from +15551230000; WhatsApp not connected (set TWILIO_WHATSAPP_FROM)")
    assert "messages to https://help.example.com/twilio/messages" in line
    assert "statuses to https://help.example.com/twilio/status" in line
    both = report(
        **BASE,
        twilio_messaging_service_sid="MG" + "0" * 32,
        twilio_whatsapp_from="whatsapp:+15551239999",
        twilio_whatsapp_template_sid="HX" + "1" * 32,
        twilio_webhook_url="https://proxy.example.com/hooks/twilio",
    )
    assert both.startswith(f"SMS messaging service MG{'0' * 32}; WhatsApp from whatsapp:+15551239999, template HX")
    assert "messages to https://proxy.example.com/hooks/twilio" in both


def test_twilio_needs_a_public_address_and_credentials() -> None:
    with pytest.raises(SettingsError, match="PUBLIC_BASE_URL: Twilio posts"):
        report(**BASE, twilio_sms_from="+15551230000", public_base_url=None)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set"):
        report(twilio_sms_from="+15551230000")


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("twilio_account_sid", "AC123", "TWILIO_ACCOUNT_SID: is not an Account SID"),
        ("twilio_sms_from", "555-1234", "TWILIO_SMS_FROM: must be a phone number in E.164 form"),
        ("twilio_whatsapp_from", "+15551239999", "TWILIO_WHATSAPP_FROM: must be whatsapp: and an E.164 number"),
        ("twilio_messaging_service_sid", "MS1", "TWILIO_MESSAGING_SERVICE_SID: is not a Messaging Service SID"),
        ("twilio_whatsapp_template_sid", "template", "TWILIO_WHATSAPP_TEMPLATE_SID: is not a Content template"),
        ("twilio_sms_max_segments", "11", "TWILIO_SMS_MAX_SEGMENTS: Input should be less than or equal to 10"),
    ],
)
def test_wrong_values_are_named_by_their_variable(name: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as error:
        report(**{**BASE, "twilio_sms_from": "+15551230000", name: value})
    assert any(p.startswith(problem) for p in error.value.problems), error.value.problems


def test_sms_max_segments_is_read_under_either_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_MAX_SEGMENTS", "3")
    core = Settings(_env_file=None)
    assert TWILIO.read(core).sms_max_segments == 3


@pytest.mark.parametrize(
    ("status", "code", "retried", "unreachable"),
    [
        (429, 20429, True, False),
        (500, 20500, True, False),
        (503, 20503, True, False),
        (401, 20003, True, False),  # credentials an operator fixes: the message waits meanwhile
        (400, 21610, False, True),  # opted out
        (400, 21211, False, True),  # not a valid number
        (400, 21614, False, True),  # not a mobile number
        (400, 21617, False, False),  # too long: permanent, but the number is fine
        (400, 12345, False, False),
    ],
)
def test_rest_errors_map_to_the_outbox(status: int, code: int, retried: bool, unreachable: bool) -> None:
    error = delivery_error(TwilioRestException(status, "/Messages.json", "nope", code))
    assert (not error.permanent, error.unreachable) == (retried, unreachable)
    if code == 21610:
        assert "opted out" in error.reason and "21610" in error.reason


def test_error_codes_are_told_in_words_with_the_code() -> None:
    assert (
        meaning("30003")
        == "the customer's handset is unreachable (switched off or out of coverage) (Twilio error 30003)"
    )
    assert meaning("99999") == "Twilio reported a delivery error (Twilio error 99999)"
    assert meaning(None) == "Twilio reported a delivery error"
