"""Twilio's inbound Messaging webhook form becomes one TwilioMessage, or a Rejected naming the bad field."""

from __future__ import annotations

import pytest
from multidict import MultiDict, MultiDictProxy

from channels.twilio.inbound import Media, Rejected, TwilioMessage, parse_inbound

SID = "SM" + "0123456789abcdef" * 2
MMS_SID = "MM" + "fedcba9876543210" * 2


def sms(**fields: str) -> dict[str, str]:
    form = {
        "MessageSid": SID,
        "SmsMessageSid": SID,
        "SmsSid": SID,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15551234567",
        "To": "+15557654321",
        "Body": "Where is my parcel?",
        "NumMedia": "0",
        "NumSegments": "1",
        "FromCountry": "US",
        "ApiVersion": "2010-04-01",
    }
    form.update(fields)
    return form


def whatsapp(**fields: str) -> dict[str, str]:
    wa = {"From": "whatsapp:+31612345678", "To": "whatsapp:+15557654321", "ProfileName": "Anna", "WaId": "31612345678"}
    return sms(**{**wa, **fields})


def message(form: object) -> TwilioMessage:
    parsed = parse_inbound(form)  # type: ignore[arg-type]
    assert isinstance(parsed, TwilioMessage), parsed
    return parsed


def test_plain_sms() -> None:
    assert parse_inbound(sms()) == TwilioMessage(
        channel="sms",
        number="+15551234567",
        to="+15557654321",
        message_sid=SID,
        text="Where is my parcel?",
        profile_name="",
        media=(),
        keyword=None,
    )


def test_whatsapp_strips_prefixes_and_keeps_the_profile_name() -> None:
    msg = message(whatsapp(ProfileName="  Anna\nde Vries "))
    assert (msg.channel, msg.number, msg.to) == ("whatsapp", "+31612345678", "+15557654321")
    assert msg.profile_name == "Anna de Vries"
    assert msg.text == "Where is my parcel?"


def test_sms_ignores_a_profile_name() -> None:
    assert message(sms(ProfileName="Anna")).profile_name == ""


def test_media_only_mms() -> None:
    form = sms(
        MessageSid=MMS_SID,
        Body="",
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        MediaContentType0="image/JPEG",
        MediaUrl1="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
        MediaContentType1="application/pdf",
    )
    msg = message(form)
    assert msg.message_sid == MMS_SID and msg.text == ""
    assert msg.media == (
        Media("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg"),
        Media("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2", "application/pdf"),
    )


def test_media_without_url_or_type_and_beyond_num_media() -> None:
    form = sms(
        NumMedia="2",
        MediaUrl0="",
        MediaUrl1="https://api.twilio.com/m/ME2",
        MediaUrl2="https://api.twilio.com/m/ME3",
    )
    assert message(form).media == (Media("https://api.twilio.com/m/ME2", "application/octet-stream"),)


@pytest.mark.parametrize("num_media", ["abc", "", "-1", "1.0", "11", "²", "99999999999999999999"])
def test_bad_num_media_means_no_media(num_media: str) -> None:
    msg = message(sms(NumMedia=num_media, MediaUrl0="https://api.twilio.com/m/ME1", MediaContentType0="image/png"))
    assert msg.media == ()


def test_missing_num_media_means_no_media() -> None:
    form = sms(MediaUrl0="https://api.twilio.com/m/ME1")
    del form["NumMedia"]
    assert message(form).media == ()


def test_media_url_must_be_http() -> None:
    assert message(sms(NumMedia="1", MediaUrl0="javascript:alert(1)")).media == ()


def test_whatsapp_location_becomes_text() -> None:
    form = whatsapp(Body="", Latitude="52.37403", Longitude="4.88969", Label="Anne Frank House", Address="Amsterdam")
    assert message(form).text == (
        "Location: Anne Frank House, Amsterdam (52.37403, 4.88969) https://maps.google.com/?q=52.37403,4.88969"
    )


def test_location_is_appended_to_a_body_and_needs_no_label() -> None:
    form = whatsapp(Body="I am here", Latitude="-33.8568", Longitude="151.2153")
    assert (
        message(form).text == "I am here\nLocation: (-33.8568, 151.2153) https://maps.google.com/?q=-33.8568,151.2153"
    )


@pytest.mark.parametrize(
    ("lat", "lon"),
    [("91", "4.9"), ("-90.5", "4.9"), ("52.3", "180.01"), ("52.3", "-181"), ("nan", "4.9"), ("1e1", "4.9"), ("", "")],
)
def test_bad_location_is_ignored(lat: str, lon: str) -> None:
    assert message(whatsapp(Latitude=lat, Longitude=lon)).text == "Where is my parcel?"


def test_location_alone_out_of_range_is_an_empty_message() -> None:
    assert parse_inbound(whatsapp(Body="", Latitude="100", Longitude="0")) == Rejected(
        "Body: empty and no media or location"
    )


def test_control_characters_stripped_and_newlines_normalised() -> None:
    msg = message(sms(Body="\r\n  Hi\x00 there\x07\r\nline\ttwo\rthree\x1b[31m \ud800\n"))
    assert msg.text == "Hi there\nline\ttwo\nthree[31m"


def test_valid_non_ascii_text_is_untouched() -> None:
    text = "Grüße 🙂 — 你好 \U0001f1f3\U0001f1f1"
    assert message(sms(Body=text)).text == text


def test_empty_message_is_rejected() -> None:
    assert parse_inbound(sms(Body=" \x00 ")) == Rejected("Body: empty and no media or location")


@pytest.mark.parametrize("field", ["MessageSid", "SmsMessageSid", "SmsSid"])
def test_sid_fallbacks(field: str) -> None:
    form = {field: SID, "From": "+15551234567", "To": "+15557654321", "Body": "hi"}
    assert message(form).message_sid == SID


def test_message_sid_wins_over_the_legacy_names() -> None:
    assert message(sms(SmsMessageSid=MMS_SID, SmsSid=MMS_SID)).message_sid == SID


def test_missing_message_sid_is_rejected() -> None:
    form = sms()
    for name in ("MessageSid", "SmsMessageSid", "SmsSid"):
        del form[name]
    assert parse_inbound(form) == Rejected("MessageSid: missing")


@pytest.mark.parametrize(
    "sid",
    ["SM123", "AC" + "0" * 32, "SM" + "g" * 32, "SM" + "0" * 33, "sm" + "0" * 32, "MG" + "0" * 32, SID[:-1]],
)
def test_malformed_sid_is_rejected(sid: str) -> None:
    parsed = parse_inbound(sms(MessageSid=sid))
    assert isinstance(parsed, Rejected) and parsed.reason.startswith("MessageSid:")


def test_malformed_fallback_sid_names_its_field() -> None:
    form = sms(SmsMessageSid="nope")
    del form["MessageSid"]
    assert parse_inbound(form) == Rejected("SmsMessageSid: not a message SID (SM or MM followed by 32 hex digits)")


@pytest.mark.parametrize("sender", [None, "", "   ", "\x00"])
def test_missing_from_is_rejected(sender: str | None) -> None:
    form = sms()
    if sender is None:
        del form["From"]
    else:
        form["From"] = sender
    assert parse_inbound(form) == Rejected("From: missing")


def test_whatsapp_prefix_without_number_is_rejected() -> None:
    assert parse_inbound(sms(From="whatsapp:")) == Rejected("From: whatsapp: without a number")


def test_other_twilio_channels_are_rejected() -> None:
    parsed = parse_inbound(sms(From="messenger:1234567890"))
    assert isinstance(parsed, Rejected) and parsed.reason.startswith("From: unsupported channel")


@pytest.mark.parametrize("form", [None, "MessageSid=SM1", 42, ["From"]])
def test_not_a_form_is_rejected(form: object) -> None:
    parsed = parse_inbound(form)  # type: ignore[arg-type]
    assert isinstance(parsed, Rejected) and parsed.reason.startswith("form:")


KEYWORDS = {
    "stop": ["stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"],
    "start": ["start", "unstop", "yes"],
    "help": ["help", "info"],
}


def variants(word: str) -> list[str]:
    return [word, word.upper(), word.title(), f"{word.upper()}.", f"  {word}!  ", f'"{word}"', f"¡{word}!\n"]


@pytest.mark.parametrize(
    ("body", "keyword"), [(v, k) for k, words in KEYWORDS.items() for w in words for v in variants(w)]
)
def test_sms_keywords(body: str, keyword: str) -> None:
    msg = message(sms(Body=body))
    assert msg.keyword == keyword
    assert msg.text == body.strip()  # the keyword message is still a message


@pytest.mark.parametrize(
    "body",
    ["stop sending me stuff", "please stop", "STOP ALL", "st op", "stopp", "opt-out", "yes please", "help?me", "🛑"],
)
def test_not_keywords(body: str) -> None:
    assert message(sms(Body=body)).keyword is None


@pytest.mark.parametrize("body", ["STOP", "stop!", "Unsubscribe", "START", "yes", "HELP"])
def test_keywords_do_not_apply_on_whatsapp(body: str) -> None:
    msg = message(whatsapp(Body=body))
    assert msg.keyword is None and msg.text == body


def test_keyword_on_a_media_message_still_counts() -> None:
    msg = message(
        sms(Body="STOP", NumMedia="1", MediaUrl0="https://api.twilio.com/m/ME1", MediaContentType0="image/png")
    )
    assert msg.keyword == "stop" and len(msg.media) == 1


def test_multidict_input() -> None:
    form = MultiDict(
        sms(Body="stop", NumMedia="1", MediaUrl0="https://api.twilio.com/m/ME1", MediaContentType0="image/gif")
    )
    form.add("Body", "start")  # a repeated key: the first value wins, as with aiohttp's post().get
    form.add("From", "+19999999999")
    msg = message(MultiDictProxy(form))
    assert (msg.number, msg.text, msg.keyword) == ("+15551234567", "stop", "stop")
    assert msg.media == (Media("https://api.twilio.com/m/ME1", "image/gif"),)


def test_non_string_values_are_treated_as_missing() -> None:
    form: dict[str, object] = {**sms(), "Body": b"hi", "NumMedia": 1}
    form["MediaUrl0"] = "https://api.twilio.com/m/ME1"
    assert parse_inbound(form) == Rejected("Body: empty and no media or location")  # type: ignore[arg-type]


def test_a_mapping_whose_get_raises_is_rejected_not_raised() -> None:
    class Broken:
        def get(self, key: str) -> str:
            raise RuntimeError("boom")

    assert parse_inbound(Broken()) == Rejected("MessageSid: missing")
