"""A real SMTP server for the tests of the gateway's outbound email: aiosmtpd, on a local port, behind TLS
made with the tests' CA (certs.py).

It is not a mock of aiosmtplib or of the gateway's mailer. The gateway connects to it over TCP exactly as
it would to a relay in production: it negotiates STARTTLS (or implicit TLS) and verifies the server's
certificate against EMAIL_TLS_CA_FILE, authenticates with AUTH PLAIN/LOGIN, and sends MAIL/RCPT/DATA.
The server answers as a real one does: 530 before AUTH, 535 for wrong credentials, and, on request,
4xx/5xx for a recipient or for DATA, so that the gateway's mapping of SMTP replies to "retry" and "give
up" is tested against replies on the wire rather than against exceptions a test made up. What it
accepted is kept as `ReceivedMail` (envelope, raw bytes, parsed message, who authenticated, whether TLS
was on), for the tests to assert on.

aiosmtpd's Controller runs the server in its own thread with its own event loop; everything the tests
read or change (captured mail, refusals, counters) is guarded by a lock, and `wait_for` polls from the
test's event loop without blocking it.
"""

from __future__ import annotations

import asyncio
import email
import errno
import logging
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any, Literal, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from tests.mailservers.certs import MailCerts

Mode = Literal["starttls", "tls", "none"]

_AUTH_REQUIRED = "530 5.7.0 Authentication required"

_log = logging.getLogger("mail.log")  # aiosmtpd's logger


class _DropAiosmtpdOwnDeprecation(logging.Filter):
    """aiosmtpd 1.4 logs "Session.login_data is deprecated" at WARNING on every successful AUTH, from its
    own code (aio-libs/aiosmtpd#347): a warning nobody can act on, in every failing test's log. Only that
    record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Session.login_data is deprecated")


if not any(isinstance(f, _DropAiosmtpdOwnDeprecation) for f in _log.filters):
    _log.addFilter(_DropAiosmtpdOwnDeprecation())


@dataclass(frozen=True)
class ReceivedMail:
    """One message the server accepted (250 after DATA)."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes  # the DATA as received: CRLF line ends, dot-stuffing removed, bytes untouched
    message: EmailMessage  # `raw` parsed with email.policy.default
    authenticated_as: str | None  # the AUTH login, or None if the session did not authenticate
    tls: bool  # whether the session was under TLS (STARTTLS or implicit) when DATA came


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_code(code: int) -> None:
    if not 400 <= code <= 599:
        raise ValueError(f"a refusal is a 4xx (temporary) or 5xx (permanent) reply, not {code}")


class _Controller(Controller):
    """aiosmtpd's threaded Controller, counting sessions and keeping them so `stop()` can drop them."""

    def __init__(self, owner: SmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner
        self.protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()  # only touched on the server's loop

    def factory(self) -> SMTP:
        smtpd = super().factory()
        self.protocols.add(smtpd)
        self._owner._session_opened()
        return smtpd

    async def drop_sessions(self) -> None:
        """Cut every open connection, as a server going down does (and so the loop can close cleanly)."""
        for smtpd in list(self.protocols):
            if smtpd.transport is not None:
                smtpd.transport.abort()
        for _ in range(3):  # let connection_lost() run
            await asyncio.sleep(0)


class _Handler:
    """aiosmtpd handler hooks: refusals, the AUTH check, and capture of what was accepted."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        # In "starttls" mode aiosmtpd's own auth_required has already answered 530; this covers "tls" and
        # "none", where aiosmtpd is run with auth_require_tls=False (see SmtpServer._smtp_kwargs).
        if self._owner.require_auth and not session.authenticated:
            return _AUTH_REQUIRED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self._owner._recipient_refusal(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        refusal = self._owner._take_data_refusal()
        if refusal is not None:
            return refusal
        raw = envelope.original_content or b""
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        transport = server.transport
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            message=cast(EmailMessage, email.message_from_bytes(raw, policy=policy.default)),
            authenticated_as=login.decode("utf-8", "replace") if session.authenticated and login else None,
            tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
        )
        self._owner._store(mail)
        return "250 2.0.0 OK: queued"

    async def handle_exception(self, error: Exception) -> str:
        # A client that gives up on the TLS handshake (e.g. the gateway rejecting a certificate it does
        # not trust, as it must) is a test's expected outcome, not a server crash: no traceback for it.
        if isinstance(error, TLSSetupException):
            _log.info("TLS handshake failed: %r", error.__cause__)
            return "421 4.7.0 TLS handshake failed"  # not sent: aiosmtpd closes the connection
        # Anything else is a bug in this server or in aiosmtpd: aiosmtpd's own default.
        _log.exception("SMTP session exception")
        return f"500 Error: ({error.__class__.__name__}) {error}"


class SmtpServer:
    """A real SMTP server on 127.0.0.1 for the gateway's outbound-email tests.

    mode "starttls": plain connect, STARTTLS offered and required before anything but EHLO/NOOP/QUIT
        (530 otherwise); AUTH offered only under TLS.
    mode "tls": TLS from the first byte (SMTPS, "implicit TLS"); AUTH offered at once.
    mode "none": no TLS at all; AUTH offered in the clear.
    AUTH PLAIN and LOGIN are checked against `username`/`password`: wrong credentials get 535. With
    `require_auth`, MAIL before AUTH gets 530.

    start(), stop() and restart() are synchronous (they return once the server is listening, or gone);
    calling them from a coroutine blocks the loop for milliseconds only. The port is chosen at the first
    start and kept across restarts, so a client configured once keeps reaching it.
    """

    host = "127.0.0.1"
    server_hostname = "localhost"  # what the server calls itself in its greeting (its certificate's name)

    def __init__(
        self,
        certs: MailCerts,
        *,
        mode: Mode = "starttls",
        username: str = "gateway",
        password: str = "smtp-test-password",
        require_auth: bool = True,
    ) -> None:
        if mode not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown mode {mode!r}")
        self.certs = certs
        self.mode: Mode = mode
        self.username = username
        self.password = password
        self.require_auth = require_auth
        self.port = 0  # chosen at the first start()
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self._refusals: dict[str, str] = {}
        self._data_refusal: str | None = None
        self._data_refusals_left: int | None = None
        self._auth_failures = 0
        self._connections = 0
        self._counting = False  # off while Controller.start() makes its own probe connection
        self._controller: _Controller | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> SmtpServer:
        """Listen (on a free port the first time, on the same port afterwards); return self."""
        if self._controller is not None:
            raise RuntimeError("the SMTP server is already running")
        first = self.port == 0
        for _attempt in range(5):
            if first:
                self.port = _free_port(self.host)
            controller = self._make_controller()
            self._counting = False
            try:
                controller.start()
            except OSError as error:
                # Only a first start may move to another port: a restart must keep the client's port.
                if first and error.errno == errno.EADDRINUSE:
                    controller.loop.close()
                    continue
                raise
            self._counting = True
            self._controller = controller
            return self
        raise RuntimeError("could not find a free port for the SMTP server")

    def stop(self) -> None:
        """Cut open connections and stop listening; connecting afterwards is refused. Captures are kept."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        future = asyncio.run_coroutine_threadsafe(controller.drop_sessions(), controller.loop)
        future.result(timeout=5)
        controller.stop()

    def restart(self) -> None:
        """stop() then start() on the same port."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _smtp_kwargs(self) -> dict[str, Any]:
        """aiosmtpd.smtp.SMTP's arguments for the mode.

        aiosmtpd only counts a session as TLS after its own STARTTLS: under implicit TLS it would refuse
        AUTH with 538, so "tls" runs with auth_require_tls=False (the whole connection is TLS anyway).
        Where auth_require_tls is False, aiosmtpd warns if auth_required is also set, so in "tls" and
        "none" the handler's handle_MAIL answers the same 530 instead.
        """
        kwargs: dict[str, Any] = {
            "server_hostname": self.server_hostname,
            "authenticator": self._authenticate,
            "decode_data": False,
        }
        if self.mode == "starttls":
            kwargs.update(
                tls_context=self.certs.server_context(),
                require_starttls=True,
                auth_require_tls=True,
                auth_required=self.require_auth,
            )
        elif self.mode == "tls":
            kwargs.update(ssl_context=self.certs.server_context(), auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        return kwargs

    def _make_controller(self) -> _Controller:
        return _Controller(self, _Handler(self), hostname=self.host, port=self.port, **self._smtp_kwargs())

    # -- what the server does (called on the server's thread) ------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.username.encode()
            and auth_data.password == self.password.encode()
        ):
            return AuthResult(success=True, auth_data=auth_data)
        with self._lock:
            self._auth_failures += 1
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8

    def _session_opened(self) -> None:
        if self._counting:
            with self._lock:
                self._connections += 1

    def _recipient_refusal(self, address: str) -> str | None:
        with self._lock:
            return self._refusals.get(address.lower())

    def _take_data_refusal(self) -> str | None:
        with self._lock:
            refusal = self._data_refusal
            if refusal is None:
                return None
            if self._data_refusals_left is not None:
                self._data_refusals_left -= 1
                if self._data_refusals_left <= 0:
                    self._data_refusal = self._data_refusals_left = None
            return refusal

    def _store(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._mails.append(mail)

    # -- what the tests read and change ----------------------------------------------------------------

    @property
    def mails(self) -> list[ReceivedMail]:
        """A snapshot of every mail accepted so far, oldest first."""
        with self._lock:
            return list(self._mails)

    def mails_to(self, address: str) -> list[ReceivedMail]:
        """The accepted mails with `address` among their envelope recipients (case-insensitive)."""
        wanted = address.lower()
        return [mail for mail in self.mails if wanted in (rcpt.lower() for rcpt in mail.rcpt_tos)]

    def clear_mails(self) -> None:
        with self._lock:
            self._mails.clear()

    @property
    def auth_failures(self) -> int:
        """AUTH attempts answered 535."""
        with self._lock:
            return self._auth_failures

    @property
    def connections(self) -> int:
        """SMTP sessions (TCP connections accepted), across restarts."""
        with self._lock:
            return self._connections

    def refuse(self, address: str, code: int, text: str | None = None) -> None:
        """Answer every RCPT TO for `address` (case-insensitive) with `code text` until allowed again.

        4xx is temporary (e.g. 450 4.2.0 mailbox busy), 5xx permanent (e.g. 550 5.1.1 user unknown).
        """
        _check_code(code)
        if text is None:
            text = "4.2.0 Mailbox busy, try again later" if code < 500 else "5.1.1 User unknown"
        with self._lock:
            self._refusals[address.lower()] = f"{code} {text}"

    def allow(self, address: str) -> None:
        with self._lock:
            self._refusals.pop(address.lower(), None)

    def refuse_data(self, code: int, text: str | None = None, times: int | None = None) -> None:
        """Answer the end of DATA with `code text` the next `times` times (None: until cleared).

        E.g. 451 4.3.0 try later (temporary) or 554 5.7.1 rejected (permanent). A refused mail is not
        captured.
        """
        _check_code(code)
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for always)")
        if text is None:
            text = "4.3.0 Try again later" if code < 500 else "5.7.1 Message rejected"
        with self._lock:
            self._data_refusal = f"{code} {text}"
            self._data_refusals_left = times

    def clear_refusals(self) -> None:
        """Forget every recipient and DATA refusal."""
        with self._lock:
            self._refusals.clear()
            self._data_refusal = self._data_refusals_left = None

    async def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMail]:
        """Wait (without blocking the loop) until at least `count` mails were accepted; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            mails = self.mails
            if len(mails) >= count:
                return mails
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the SMTP server accepted {len(mails)} mail(s) in {timeout}s, not {count}")
            await asyncio.sleep(0.02)
