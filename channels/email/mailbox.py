"""Reading the support mailbox over IMAP (aioimaplib): IDLE where the server offers it, polling otherwise.

The position is the folder's UIDVALIDITY and the highest UID handled, kept in `channel_state`, so a
restart goes on where it stopped. Each mail is fetched with BODY.PEEK[] (which leaves \\Seen alone),
handed to the channel, which stores it, and only then marked processed (flagged \\Seen, or moved to
IMAP_PROCESSED_FOLDER) and the position moved past it. A crash anywhere in between fetches the mail
again; its Message-ID makes the second store a no-op. Nothing is lost and nothing is doubled.

At the first start, or when UIDVALIDITY changes (the server rebuilt the folder and UIDs mean nothing any
more), the mail still waiting is read: unread mail when processed mail is flagged, every mail in the
folder when processed mail is moved out of it. Mail already stored is recognised by its Message-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aioimaplib
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure

from channels.email.settings import EmailSettings
from gateway.logs import log_event

log = logging.getLogger("channels.email.mailbox")

# RFC 2177: a client should re-issue IDLE at least every 29 minutes, or the server may log it out. Every
# ten: each renewal searches the folder too, so a new-mail notice lost in transit delays a mail ten
# minutes at the most.
IDLE_SECONDS = 10 * 60
COMMAND_TIMEOUT = 60.0
RETRY_MAX_SECONDS = 120.0
# How often a waiting IDLE checks that its connection is still there (a local check, no traffic).
LIVENESS_SECONDS = 2.0
# Tries to store one mail that fails for another reason than the database being away.
MAX_ATTEMPTS = 3
_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")

Handler = Callable[..., Awaitable[Any]]


class ImapError(Exception):
    """The server answered NO or BAD, or something unreadable."""


def _ok(response: Any, what: str) -> Any:
    if response.result != "OK":
        said = b" ".join(bytes(line) for line in response.lines[-1:]).decode("utf-8", "replace")[:200]
        raise ImapError(f"{what}: {response.result} {said}")
    return response


def _literal(response: Any) -> bytes | None:
    """The message bytes of a FETCH answer: aioimaplib hands a literal over as a bytearray line."""
    found = [line for line in response.lines if isinstance(line, bytearray)]
    return bytes(found[0]) if found else None


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailbox:
    def __init__(self, settings: EmailSettings, handle: Handler, state: AsyncCollection) -> None:
        self.settings = settings
        self.handle = handle
        self.state = state
        where = f"{settings.imap_username}@{settings.imap_host}:{settings.imap_port_used}/{settings.imap_folder}"
        self.key = f"email-imap:{where}"
        self._task: asyncio.Task[None] | None = None
        self._client: aioimaplib.IMAP4 | None = None
        self._lost = asyncio.Event()
        self._attempts: dict[int, int] = {}  # failures to store a mail, by UID (this process)
        # Whether the last session got as far as reading the folder: what /readyz-style checks and tests read.
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="email-imap")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 10)
        await self._logout()

    async def _logout(self) -> None:
        client, self._client = self._client, None
        if client is not None and not self._lost.is_set():
            with contextlib.suppress(Exception):
                if client.has_pending_idle():
                    client.idle_done()
                await asyncio.wait_for(client.logout(), 5)

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._session()  # returns only by raising
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The server away, a password refused, the database away mid-mail: nothing was marked
                # processed that was not stored, so the next session simply starts from the position.
                if self.connected.is_set():
                    delay = 1.0  # the session worked until now: this is a new failure, not the same one again
                level = logging.WARNING if isinstance(exc, ImapError | OSError | TimeoutError) else logging.ERROR
                log_event(log, "imap_failed", level, error=type(exc).__name__, reason=str(exc)[:200], retry_in_s=delay)
                self.connected.clear()
                await self._logout()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    # the session

    async def _connect(self) -> aioimaplib.IMAP4:
        s = self.settings
        assert s.imap_host is not None and s.imap_username is not None and s.imap_password is not None
        self._lost = asyncio.Event()
        # The base class with an SSL context rather than IMAP4_SSL: only the base takes conn_lost_cb, and a
        # dropped connection must end the session (aioimaplib would otherwise wait on it forever in IDLE).
        client = aioimaplib.IMAP4(
            s.imap_host,
            s.imap_port_used,
            timeout=COMMAND_TIMEOUT,
            conn_lost_cb=lambda exc: self._lost.set(),
            ssl_context=s.tls_context() if s.imap_tls == "tls" else None,
        )
        self._client = client
        await client.wait_hello_from_server()
        if s.imap_tls == "starttls":
            await self._starttls(client)
        _ok(await client.login(s.imap_username, s.imap_password.get_secret_value()), "LOGIN")
        return client

    async def _starttls(self, client: aioimaplib.IMAP4) -> None:
        """aioimaplib has no STARTTLS of its own: the command is sent, then asyncio upgrades the
        connection in place and the capabilities are asked again (RFC 3501 §6.2.1: they may change)."""
        protocol = client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("STARTTLS: the server does not offer it (set IMAP_TLS=tls for port 993)")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        _ok(await asyncio.wait_for(protocol.execute(command), COMMAND_TIMEOUT), "STARTTLS")
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(
            protocol.transport, protocol, self.settings.tls_context(), server_hostname=self.settings.imap_host
        )
        protocol.transport = transport
        await asyncio.wait_for(protocol.capability(), COMMAND_TIMEOUT)

    async def _session(self) -> None:
        client = await self._connect()
        folder = self.settings.imap_folder
        selected = _ok(await client.select(_quoted(folder)), f"SELECT {folder}")
        codes = {name: int(value) for line in selected.lines for name, value in _CODE.findall(bytes(line))}
        uidvalidity, uidnext = codes.get(b"UIDVALIDITY", 0), codes.get(b"UIDNEXT", 0)
        idle = client.has_capability("IDLE")
        log_event(log, "imap_connected", folder=folder, idle=idle)
        self.connected.set()
        while True:
            # Again until nothing new: aioimaplib drops the EXISTS a server sends while another command
            # (a FETCH of earlier mail) runs, so mail that came in meanwhile is found by searching, not by
            # waiting for a notice that already went by.
            while await self.catch_up(client, uidvalidity, uidnext):
                uidnext = 0
            if idle:
                await self._idle(client)
            else:
                await asyncio.sleep(self.settings.imap_poll_seconds)
                if self._lost.is_set():
                    raise ImapError("the server closed the connection")
                _ok(await client.noop(), "NOOP")

    async def _idle(self, client: aioimaplib.IMAP4) -> None:
        """Wait for the server to say mail arrived (EXISTS), or IDLE_SECONDS, whichever first. A connection
        that drops or a server that says BYE (shutting down, or the folder rebuilt under it) ends the session."""
        waiting = await client.idle_start(timeout=IDLE_SECONDS)
        queue = client.protocol.idle_queue
        # One get() kept across the liveness checks: cancelling a queue.get() can lose what it was handed.
        getter = asyncio.ensure_future(queue.get())
        try:
            while True:
                done, _ = await asyncio.wait({getter}, timeout=LIVENESS_SECONDS)
                if self._lost.is_set():
                    raise ImapError("the server closed the connection")
                if not done:
                    continue
                pushed = getter.result()
                if pushed == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    return
                lines = [bytes(line) for line in pushed if isinstance(line, bytes | bytearray)]
                if any(b"BYE" in line for line in lines):
                    raise ImapError("the server ended the session: " + b" ".join(lines).decode("utf-8", "replace"))
                if any(b"EXISTS" in line for line in lines):
                    return
                getter = asyncio.ensure_future(queue.get())
        finally:
            getter.cancel()
            with contextlib.suppress(Exception):
                client.idle_done()
            # The DONE's answer, unless the connection is gone (a server that said BYE closes it next).
            # asyncio.wait, not wait_for: neither waiting nor a cancellation of this task is swallowed.
            lost = asyncio.ensure_future(self._lost.wait())
            await asyncio.wait({waiting, lost}, timeout=COMMAND_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()

    # the mail

    async def catch_up(self, client: aioimaplib.IMAP4, uidvalidity: int, uidnext: int) -> int:
        """Handle every mail past the position; returns how many were handled."""
        position = await self.state.find_one({"_id": self.key}) or {}
        known = position.get("uidvalidity") == uidvalidity
        if known:
            last = int(position.get("last_uid") or 0)
            criteria = f"UID {last + 1}:*"
        else:
            if position:
                log_event(log, "imap_uidvalidity_changed", logging.WARNING, folder=self.settings.imap_folder)
            # What is still waiting: marking (flag or move) takes handled mail out of this search, so a
            # crash half-way through picks up exactly the rest.
            last = 0
            criteria = "ALL" if self.settings.imap_processed_folder else "UNSEEN"
        found = _ok(await client.uid_search(criteria, charset=None), "UID SEARCH")
        uids = sorted({int(n) for line in found.lines[:1] for n in bytes(line).split() if n.isdigit()})
        # "n:*" always includes the newest mail, even when its UID is below n (RFC 3501 §6.4.8).
        uids = [uid for uid in uids if uid > last]
        for uid in uids:
            await self._one(client, uid)
            if known:
                await self._advance(uidvalidity, uid)
        if not known:
            # From here on, later mail is found by UID.
            await self._advance(uidvalidity, max([uidnext - 1, *uids, 0]))
        return len(uids)

    async def _advance(self, uidvalidity: int, uid: int) -> None:
        # $max: two gateway processes reading the same mailbox never move the position back.
        moved = await self.state.update_one({"_id": self.key, "uidvalidity": uidvalidity}, {"$max": {"last_uid": uid}})
        if moved.matched_count == 0:
            await self.state.replace_one(
                {"_id": self.key}, {"_id": self.key, "uidvalidity": uidvalidity, "last_uid": uid}, upsert=True
            )

    async def _one(self, client: aioimaplib.IMAP4, uid: int) -> None:
        size_answer = _ok(await client.uid("fetch", str(uid), "(RFC822.SIZE)"), "UID FETCH size")
        sizes = [int(m) for line in size_answer.lines for m in _SIZE.findall(bytes(line))]
        if not sizes:
            return  # gone meanwhile (another process moved it, a person deleted it)
        size = sizes[0]
        if size > self.settings.max_bytes:
            answer = _ok(await client.uid("fetch", str(uid), "(BODY.PEEK[HEADER])"), "UID FETCH header")
            raw = _literal(answer) or b""
            log_event(log, "imap_mail_too_large", logging.WARNING, size=size, limit=self.settings.max_bytes)
            handled = await self._handle(uid, raw, oversize=size)
        else:
            answer = _ok(await client.uid("fetch", str(uid), "(BODY.PEEK[])"), "UID FETCH")
            raw = _literal(answer)
            if raw is None:
                return
            handled = await self._handle(uid, raw)
        if handled:
            await self._mark(client, uid)

    async def _handle(self, uid: int, raw: bytes, **kw: Any) -> bool:
        """Store one mail. The database away raises (the session ends, the mail is read again later). Any
        other failure is retried MAX_ATTEMPTS times; then the mail is left in the mailbox, unmarked, for a
        person, and logged, so one mail the gateway cannot store never holds up all the mail behind it."""
        try:
            await self.handle(raw, **kw)
        except ConnectionFailure:
            raise
        except Exception as exc:
            attempts = self._attempts[uid] = self._attempts.get(uid, 0) + 1
            if attempts < MAX_ATTEMPTS:
                raise
            log_event(
                log, "imap_mail_not_stored", logging.ERROR, uid=uid, attempts=attempts, error=type(exc).__name__,
                reason=str(exc)[:200], hint=f"the mail is left unread in {self.settings.imap_folder}",
            )  # fmt: skip
            return False
        self._attempts.pop(uid, None)
        return True

    async def _mark(self, client: aioimaplib.IMAP4, uid: int) -> None:
        target = self.settings.imap_processed_folder
        if not target:
            _ok(await client.uid("store", str(uid), "+FLAGS.SILENT (\\Seen)"), "UID STORE")
            return
        if client.has_capability("MOVE"):
            _ok(await client.uid("move", str(uid), _quoted(target)), "UID MOVE")
            return
        # No MOVE (RFC 6851): copy, flag deleted, and expunge just this one where UIDPLUS allows.
        _ok(await client.uid("copy", str(uid), _quoted(target)), "UID COPY")
        _ok(await client.uid("store", str(uid), "+FLAGS.SILENT (\\Deleted \\Seen)"), "UID STORE")
        if client.has_capability("UIDPLUS"):
            _ok(await client.uid("expunge", str(uid)), "UID EXPUNGE")
