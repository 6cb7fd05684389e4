"""Twilio's error codes as the outbox and the agents understand them.

A REST error is a `TwilioRestException` with the HTTP status and Twilio's numeric `code`; a message
that was accepted and then failed comes back in a status callback with `ErrorCode`. Both are told to
the agent in words, with the code, since the console and Twilio's docs are searched by it.
"""

from __future__ import annotations

from twilio.base.exceptions import TwilioRestException

from gateway.models import DeliveryError

# The codes a support team meets, in the agent's words (https://www.twilio.com/docs/api/errors).
MEANINGS: dict[int, str] = {
    21211: "the phone number is not valid",
    21408: "sending to this region is not enabled on the Twilio account",
    21610: "the customer has opted out (they texted STOP)",
    21612: "this number cannot be reached from our sender",
    21614: "the number is not a mobile number and cannot receive SMS",
    21617: "the message is longer than Twilio's 1,600-character limit",
    30003: "the customer's handset is unreachable (switched off or out of coverage)",
    30004: "the message was blocked (the customer blocked us, or their carrier did)",
    30005: "the number is unknown to the carrier or no longer exists",
    30006: "the number is a landline or cannot receive this message",
    30007: "the carrier filtered the message as spam",
    30008: "the carrier reported an unknown error",
    63016: "WhatsApp's 24-hour window is closed: only an approved template may be sent until the customer writes",
    63003: "the WhatsApp number is not valid",
    63024: "the recipient is not a valid WhatsApp user",
    63032: "the customer has opted out of WhatsApp marketing messages",
}
# Codes that mean the customer cannot be reached at this number at all: the conversation is marked
# unreachable and the agent told, and nothing is retried.
UNREACHABLE = frozenset({21211, 21610, 21612, 21614, 30004, 30005, 30006, 63003, 63024})
OPTED_OUT = 21610
WINDOW_CLOSED = 63016


def meaning(code: int | str | None) -> str:
    try:
        number = int(code or 0)
    except ValueError:
        number = 0
    text = MEANINGS.get(number, "Twilio reported a delivery error")
    return f"{text} (Twilio error {number})" if number else text


def delivery_error(exc: TwilioRestException) -> DeliveryError:
    """REST errors for the outbox: 429 and 5xx are retried with the outbox's backoff (the twilio client
    does not pass a Retry-After header on), a number that cannot receive is unreachable, any other 4xx
    is permanent (sending it again cannot help)."""
    code = int(exc.code or 0)
    if exc.status == 429 or exc.status >= 500:
        return DeliveryError(f"Twilio unavailable ({exc.status}): {exc.msg}")
    if code in UNREACHABLE:
        return DeliveryError(meaning(code), unreachable=True)
    if exc.status in (401, 403):
        # Wrong credentials are fixed by an operator; until then the message waits.
        return DeliveryError(f"Twilio refused our credentials ({exc.status}): check TWILIO_AUTH_TOKEN")
    reason = meaning(code) if code in MEANINGS else exc.msg
    return DeliveryError(f"Twilio rejected the message: {reason}", permanent=True)
