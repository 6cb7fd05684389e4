"""A local fake of Twilio's Programmable Messaging REST API and of Twilio's webhook sender, so the SMS /
WhatsApp channel's tests drive the real ``twilio`` client offline.

Point the real client at it::

    client = Client(fake.account_sid, fake.auth_token, http_client=AsyncTwilioHttpClient())
    client.api.base_url = fake.url

It follows https://www.twilio.com/docs/messaging/api/message-resource: ``POST
/2010-04-01/Accounts/{AccountSid}/Messages.json`` with a form-encoded body and HTTP basic auth (Account SID
and auth token), answering 201 with a Message resource, or Twilio's JSON error body
``{"code", "message", "more_info", "status"}`` (https://www.twilio.com/docs/usage/twilios-response).
``GET .../Messages/{Sid}.json`` fetches a message's current state.

Around the API it plays Twilio calling the application:

- status callbacks (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status): after a send
  with ``StatusCallback`` the fake POSTs ``sent`` then ``delivered`` (or what ``deliver_status`` scripts),
  signed with ``X-Twilio-Signature`` (https://www.twilio.com/docs/usage/security#validating-requests);
- inbound message webhooks (https://www.twilio.com/docs/messaging/guides/webhook-request), built with
  ``sms_params`` / ``whatsapp_params`` and delivered with ``send_inbound``;
- media a customer sent (``add_media``), served from Twilio-shaped URLs behind the same basic auth (as with
  "Enforce HTTP Auth on Media URLs" on; real Twilio then redirects to a CDN, the fake answers the bytes).

Every API request is recorded (``calls``), accepted sends also in ``messages``; failures can be scripted
(``fail_next``, ``refuse``, ``deliver_status``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import MultiDict
from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_BODY = 1600  # error 21617: "The concatenated message body exceeds the 1600 character limit."
MAX_MEDIA = 10  # "You can include up to 10 MediaUrl parameters per message"

Params = Mapping[str, str | Sequence[str]]

# Messages of the error codes the fake uses (https://www.twilio.com/docs/api/errors/<code>).
ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21623: "Number of media files exceeds allowed limit.",
    21656: "The ContentVariables Parameter is invalid.",
    21910: "Invalid From and To pair. From and To should be of the same channel",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    63016: (
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template."
    ),
}

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_CHANNELS = ("whatsapp", "messenger", "rcs")  # "<channel>:<address>" senders and recipients
# GSM 03.38 (https://www.twilio.com/docs/glossary/what-is-gsm-7-character-encoding): the basic set costs one
# septet, the extension set two; anything else makes the whole message UCS-2.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def error_body(code: int, status: int, message: str | None = None) -> dict[str, Any]:
    """Twilio's JSON error body (https://www.twilio.com/docs/usage/twilios-response#response-formats-exceptions)."""
    return {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, f"Error {code}"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def new_sid(prefix: str) -> str:
    """A Twilio SID: two-letter type prefix plus 32 lowercase hex digits (SM, MM, ME, AC, MG, HX, ...)."""
    return prefix + secrets.token_hex(16)


def num_segments(body: str) -> int:
    """SMS segments: GSM-7 160 septets single / 153 per part, else UCS-2 70 / 67 UTF-16 units."""
    if not body:
        return 1
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in body):
        units, single, part = sum(2 if c in _GSM_EXTENDED else 1 for c in body), 160, 153
    else:
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // part)


def channel_of(address: str) -> str | None:
    """``"whatsapp"`` for ``whatsapp:+1555...``, None for a plain phone number."""
    prefix, sep, _ = address.partition(":")
    return prefix if sep and prefix in _CHANNELS else None


def bare_number(address: str) -> str:
    """``+15551234567`` for ``whatsapp:+15551234567`` (and for ``+15551234567``)."""
    return address.partition(":")[2] if channel_of(address) else address


def _multi(params: Params) -> MultiDict[str]:
    """Form parameters as a MultiDict: a list value becomes a repeated key (``MediaUrl``), which both the form
    encoder and RequestValidator (through ``getall``) understand."""
    out: MultiDict[str] = MultiDict()
    for key, value in params.items():
        for item in [value] if isinstance(value, str) else value:
            out.add(key, str(item))
    return out


def sign(auth_token: str, url: str, params: Params) -> str:
    """The X-Twilio-Signature Twilio would send for a form POST of ``params`` to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, _multi(params))


@dataclass
class SentMessage:
    """One accepted Messages create call, and what became of the message since."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    media_urls: list[str]
    messaging_service_sid: str | None
    status_callback: str | None
    content_sid: str | None
    content_variables: str | None  # the raw JSON string as sent
    params: dict[str, list[str]]  # every form parameter, as received
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "queued"
    status_history: list[str] = field(default_factory=list)  # statuses reached after the create answer
    error_code: int | None = None
    sent_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def variables(self) -> dict[str, Any]:
        """ContentVariables decoded ({} when none were sent)."""
        return json.loads(self.content_variables) if self.content_variables else {}

    @property
    def channel(self) -> str | None:
        return channel_of(self.to)


@dataclass
class Call:
    """One recorded API request (accepted or not) and the HTTP status answered."""

    method: str
    path: str
    params: dict[str, list[str]]
    status: int
    authorized: bool
    at: float = field(default_factory=time.monotonic)


@dataclass
class Delivery:
    """One request the fake made as Twilio (a status callback or an inbound webhook) and its outcome."""

    url: str
    params: dict[str, list[str]]
    signature: str | None
    status: int | None = None  # None when the request failed outright (``error`` says why)
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Failure:
    code: int
    status: int
    message: str | None
    retry_after: int | None = None


@dataclass
class _Media:
    content: bytes
    content_type: str


class FakeTwilioApi:
    """The fake: ``await start()`` (or ``async with``), set ``client.api.base_url = fake.url``, read ``messages``,
    ``calls`` and ``callback_results``."""

    def __init__(
        self,
        account_sid: str = "AC" + "0123456789abcdef" * 2,
        auth_token: str = "fedcba9876543210" * 2,
        *,
        service_from: str = "+15005550006",
        send_read_receipts: bool = False,
        callback_delay: float = 0.01,
        media_auth: bool = True,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.service_from = service_from  # the sender a Messaging Service picks when no From is given
        self.send_read_receipts = send_read_receipts  # WhatsApp sends also end with "read"
        self.callback_delay = callback_delay  # seconds before each status step
        self.media_auth = media_auth  # media GETs need basic auth (Twilio's "Enforce HTTP Auth on Media URLs")
        self.messages: list[SentMessage] = []
        self.calls: list[Call] = []
        self.callback_results: list[Delivery] = []
        self.inbound_results: list[Delivery] = []
        self.media_gets: Counter[str] = Counter()  # media URL → GETs answered with the bytes
        self.server: TestServer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._failures: list[_Failure] = []
        self._refusals: dict[str, _Failure] = {}
        self._outcomes: dict[str, tuple[str, int | None]] = {}
        self._media: dict[str, _Media] = {}  # path → stored media
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> FakeTwilioApi:
        app = web.Application()
        accounts = f"/{API_VERSION}/Accounts/{{account}}"
        app.router.add_post(f"{accounts}/Messages.json", self._create_message)
        app.router.add_get(f"{accounts}/Messages/{{sid}}.json", self._fetch_message)
        app.router.add_get(f"{accounts}/Messages/{{message}}/Media/{{media}}", self._get_media)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self._session = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self.server is not None:
            await self.server.close()

    stop = close

    async def __aenter__(self) -> FakeTwilioApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Root URL without trailing slash: the real client's ``client.api.base_url``."""
        assert self.server is not None, "start() the fake first"
        return str(self.server.make_url("")).rstrip("/")

    # --- scripting -------------------------------------------------------------------------------

    def fail_next(
        self,
        code: int,
        status: int = 400,
        message: str | None = None,
        times: int = 1,
        *,
        retry_after: int | None = None,
    ) -> None:
        """The next ``times`` Messages create calls answer Twilio's error body with this code and HTTP status
        (e.g. ``fail_next(20429, 429, retry_after=2)``, ``fail_next(20500, 500)``)."""
        self._failures.extend([_Failure(code, status, message, retry_after)] * times)

    def refuse(self, to_number: str, code: int, message: str | None = None, *, status: int = 400) -> None:
        """Every create to ``to_number`` answers this error until ``allow(to_number)``: 21610 (unsubscribed,
        the recipient texted STOP), 21211, 21614, ... A plain number also covers its ``whatsapp:`` address.
        (Real Twilio accepts a WhatsApp freeform outside the 24-hour window and fails it later with 63016;
        for that, ``deliver_status(to, "failed", 63016)`` is the faithful model.)"""
        self._refusals[to_number] = _Failure(code, status, message)

    def allow(self, to_number: str) -> None:
        self._refusals.pop(to_number, None)

    def deliver_status(self, to_number: str, final: str = "undelivered", error_code: int | None = 30003) -> None:
        """How sends to ``to_number`` end: ``"undelivered"`` (sent, then undelivered with ``error_code``),
        ``"failed"`` (failed at once with ``error_code``), ``"delivered"`` or ``"read"``."""
        if final not in ("delivered", "read", "undelivered", "failed"):
            raise ValueError(f"unknown final status {final!r}")
        self._outcomes[to_number] = (final, error_code if final in ("undelivered", "failed") else None)

    def add_media(self, content: bytes, content_type: str, *, message_sid: str | None = None) -> str:
        """Store media as a customer's inbound attachment and return its URL, shaped like Twilio's
        ``/2010-04-01/Accounts/{AccountSid}/Messages/MM.../Media/ME...`` (pass ``message_sid`` to group
        several under one message)."""
        message_sid = message_sid or new_sid("MM")
        path = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{new_sid('ME')}"
        self._media[path] = _Media(content, content_type)
        return self.url + path

    # --- inspection ------------------------------------------------------------------------------

    def message(self, sid: str) -> SentMessage | None:
        return next((m for m in self.messages if m.sid == sid), None)

    def messages_to(self, to: str) -> list[SentMessage]:
        return [m for m in self.messages if m.to == to]

    async def wait_for_callbacks(self, timeout: float = 5.0) -> None:
        """Wait until every scheduled status progression (and its callbacks) has finished."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- Twilio calling the application ---------------------------------------------------------

    def status_params(self, message: SentMessage, status: str, error_code: int | None = None) -> dict[str, str]:
        """The form a status callback carries for ``message`` reaching ``status``."""
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "AccountSid": message.account_sid,
            "From": message.from_ or self._service_sender(message.to),
            "To": message.to,
            "MessageStatus": status,
            "SmsStatus": status,
            "ApiVersion": API_VERSION,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return params

    async def post_status(
        self, url: str, params: Params, *, forge: bool = False, omit_signature: bool = False
    ) -> Delivery:
        """POST a status callback as Twilio would (or a forged one), record it in ``callback_results``."""
        delivery = await self._deliver(url, params, forge=forge, omit_signature=omit_signature)
        self.callback_results.append(delivery)
        return delivery

    async def send_inbound(
        self,
        url: str,
        params: Params,
        *,
        signature_url: str | None = None,
        forge: bool = False,
        omit_signature: bool = False,
    ) -> tuple[int, str, dict[str, str]]:
        """POST an inbound-message webhook to ``url``, signed over ``signature_url or url`` (the URL configured
        in the Twilio console, which may differ from where a proxy delivers it). ``forge`` signs with a wrong
        token, ``omit_signature`` sends no signature. Returns (status, body, headers); connection errors raise."""
        delivery = await self._deliver(
            url, params, signature_url=signature_url, forge=forge, omit_signature=omit_signature, raise_errors=True
        )
        self.inbound_results.append(delivery)
        assert delivery.status is not None
        return delivery.status, delivery.body, delivery.headers

    def sms_params(
        self,
        from_: str,
        to: str,
        body: str,
        message_sid: str | None = None,
        *,
        media: Sequence[tuple[str, str]] | None = None,
        messaging_service_sid: str | None = None,
        **extra: str,
    ) -> dict[str, str]:
        """The inbound SMS/MMS webhook parameters (https://www.twilio.com/docs/messaging/guides/webhook-request);
        ``extra`` adds or overrides (e.g. ``FromCountry="US"``)."""
        media = list(media or [])
        sid = message_sid or new_sid("MM" if media else "SM")
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": str(len(media)),
            "NumSegments": str(num_segments(body)),
            "SmsStatus": "received",
            "ApiVersion": API_VERSION,
        }
        if messaging_service_sid:
            params["MessagingServiceSid"] = messaging_service_sid
        for index, (media_url, content_type) in enumerate(media):
            params[f"MediaContentType{index}"] = content_type
            params[f"MediaUrl{index}"] = media_url
        return params | extra

    def whatsapp_params(
        self,
        from_: str,
        to: str,
        body: str = "",
        *,
        profile_name: str = "Test Customer",
        message_sid: str | None = None,
        media: Sequence[tuple[str, str]] | None = None,
        latitude: float | str | None = None,
        longitude: float | str | None = None,
        address: str | None = None,
        label: str | None = None,
        messaging_service_sid: str | None = None,
        **extra: str,
    ) -> dict[str, str]:
        """The inbound WhatsApp webhook parameters (https://www.twilio.com/docs/messaging/guides/webhook-request
        "WhatsApp-specific parameters"): ``whatsapp:`` addresses, ProfileName, WaId (the sender's number without
        ``+``), MessageType, and Latitude/Longitude/Address/Label for a shared location."""
        sender, recipient = (a if channel_of(a) else f"whatsapp:{a}" for a in (from_, to))
        params = self.sms_params(
            sender, recipient, body, message_sid, media=media, messaging_service_sid=messaging_service_sid
        )
        params["NumSegments"] = "1"
        params["ProfileName"] = profile_name
        params["WaId"] = bare_number(sender).lstrip("+")
        if latitude is not None and longitude is not None:
            params |= {"Latitude": str(latitude), "Longitude": str(longitude)}
            params |= {k: v for k, v in (("Address", address), ("Label", label)) if v is not None}
            kind = "location"
        elif media:
            kind = {"image": "image", "video": "video", "audio": "audio"}.get(media[0][1].split("/")[0], "document")
        else:
            kind = "text"
        params["MessageType"] = kind
        return params | extra

    # --- HTTP plumbing: the API ------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return False
        return scheme.lower() == "basic" and login == self.account_sid and password == self.auth_token

    @staticmethod
    def _error(code: int, status: int, message: str | None = None, retry_after: int | None = None) -> web.Response:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return web.json_response(error_body(code, status, message), status=status, headers=headers)

    def _record(self, request: web.Request, params: MultiDict[str] | None, response: web.Response) -> web.Response:
        values: dict[str, list[str]] = {}
        for key, value in (params or {}).items():
            values.setdefault(key, []).append(value)
        authorized = response.status != 401
        self.calls.append(Call(request.method, request.path, values, response.status, authorized))
        return response

    def _check_account(self, request: web.Request) -> web.Response | None:
        if not self._authorized(request) or request.match_info["account"] != self.account_sid:
            return self._error(20003, 401)
        return None

    async def _create_message(self, request: web.Request) -> web.Response:
        form = await request.post()
        params: MultiDict[str] = MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
        return self._record(request, params, self._create(request, params))

    def _create(self, request: web.Request, params: MultiDict[str]) -> web.Response:
        if (denied := self._check_account(request)) is not None:
            return denied
        if self._failures:
            failure = self._failures.pop(0)
            return self._error(failure.code, failure.status, failure.message, failure.retry_after)
        to, from_ = params.get("To", ""), params.get("From") or None
        service = params.get("MessagingServiceSid") or None
        body, media = params.get("Body", ""), params.getall("MediaUrl", [])
        content_sid, variables = params.get("ContentSid") or None, params.get("ContentVariables") or None
        if not to:
            return self._error(21604, 400)
        if not (from_ or service):
            return self._error(21603, 400)
        if not (body or media or content_sid):
            return self._error(21602, 400)
        if not _E164.match(bare_number(to)):
            return self._error(21211, 400, f"The 'To' number {to} is not a valid phone number.")
        if from_ and channel_of(from_) != channel_of(to):
            return self._error(21910, 400)
        if len(body) > MAX_BODY:
            return self._error(21617, 400)
        if len(media) > MAX_MEDIA:
            return self._error(21623, 400)
        if variables is not None:
            try:
                json.loads(variables)
            except ValueError:
                return self._error(21656, 400)
        if (refusal := self._refusals.get(to) or self._refusals.get(bare_number(to))) is not None:
            return self._error(refusal.code, refusal.status, refusal.message)
        values: dict[str, list[str]] = {}
        for key, value in params.items():
            values.setdefault(key, []).append(value)
        message = SentMessage(
            sid=new_sid("MM" if media else "SM"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            body=body,
            media_urls=list(media),
            messaging_service_sid=service,
            status_callback=params.get("StatusCallback") or None,
            content_sid=content_sid,
            content_variables=variables,
            params=values,
            # "accepted": a Messaging Service has yet to pick the sender.
            status="queued" if from_ else "accepted",
        )
        message.updated_at = message.created_at
        self.messages.append(message)
        task = asyncio.create_task(self._progress(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(self._resource(message), status=201)

    async def _fetch_message(self, request: web.Request) -> web.Response:
        if (denied := self._check_account(request)) is not None:
            return self._record(request, None, denied)
        sid = request.match_info["sid"]
        if (message := self.message(sid)) is None:
            uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
            return self._record(request, None, self._error(20404, 404, f"The requested resource {uri} was not found"))
        return self._record(request, None, web.json_response(self._resource(message)))

    async def _get_media(self, request: web.Request) -> web.Response:
        if self.media_auth and (denied := self._check_account(request)) is not None:
            return self._record(request, None, denied)
        if (media := self._media.get(request.path)) is None:
            return self._record(request, None, self._error(20404, 404))
        self.media_gets[self.url + request.path] += 1
        return self._record(request, None, web.Response(body=media.content, content_type=media.content_type))

    async def _not_found(self, request: web.Request) -> web.Response:
        message = f"The requested resource {request.path} was not found"
        return self._record(request, None, self._error(20404, 404, message))

    def _resource(self, message: SentMessage) -> dict[str, Any]:
        """The Message resource JSON (https://www.twilio.com/docs/messaging/api/message-resource)."""
        uri = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
        segments = 1 if message.channel or message.content_sid else num_segments(message.body)

        def date(value: datetime | None) -> str | None:
            return format_datetime(value) if value else None

        return {
            "account_sid": message.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": date(message.created_at),
            "date_sent": date(message.sent_at),
            "date_updated": date(message.updated_at),
            "direction": "outbound-api",
            "error_code": message.error_code,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": str(len(message.media_urls)),
            "num_segments": str(segments),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }

    # --- HTTP plumbing: Twilio's requests ---------------------------------------------------------

    def _service_sender(self, to: str) -> str:
        channel = channel_of(to)
        return f"{channel}:{self.service_from}" if channel and not channel_of(self.service_from) else self.service_from

    def _steps(self, message: SentMessage) -> list[tuple[str, int | None]]:
        final, code = self._outcomes.get(message.to) or self._outcomes.get(bare_number(message.to)) or (None, None)
        if final == "failed":
            return [("failed", code)]
        if final == "undelivered":
            return [("sent", None), ("undelivered", code)]
        steps: list[tuple[str, int | None]] = [("sent", None), ("delivered", None)]
        if final == "read" or (message.channel == "whatsapp" and self.send_read_receipts):
            steps.append(("read", None))
        return steps

    async def _progress(self, message: SentMessage) -> None:
        for status, code in self._steps(message):
            await asyncio.sleep(self.callback_delay)
            message.status, message.error_code = status, code
            message.status_history.append(status)
            message.updated_at = datetime.now(UTC)
            if status == "sent":
                message.from_ = message.from_ or self._service_sender(message.to)
                message.sent_at = message.updated_at
            if message.status_callback:
                await self.post_status(message.status_callback, self.status_params(message, status, code))

    async def _deliver(
        self,
        url: str,
        params: Params,
        *,
        signature_url: str | None = None,
        forge: bool = False,
        omit_signature: bool = False,
        raise_errors: bool = False,
    ) -> Delivery:
        assert self._session is not None, "start() the fake first"
        form = _multi(params)
        token = "0" * 32 if forge else self.auth_token
        signature = None if omit_signature else sign(token, signature_url or url, form)
        headers = {
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        values: dict[str, list[str]] = {}
        for key, value in form.items():
            values.setdefault(key, []).append(value)
        delivery = Delivery(url, values, signature)
        try:
            async with self._session.post(url, data=list(form.items()), headers=headers) as response:
                delivery.status, delivery.body = response.status, await response.text()
                delivery.headers = dict(response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if raise_errors:
                raise
            delivery.error = repr(exc)
        return delivery
