"""A real Dovecot IMAP server for the tests: each instance is its own `dovecot` process with its own config,
ports, Maildir and log in a temp directory, started and stopped by the test that needs it.

Why a real server and not a fake: what the gateway's IMAP inbound has to get right is exactly what a fake would
have to guess at — when IDLE pushes EXISTS, what UIDVALIDITY and UIDs do, \\Recent and \\Seen, MOVE between
folders, what a server restart or a hard kill does to an open connection. Dovecot is what many operators run.

Debian's dovecot-imapd (scripts/ensure-dovecot.sh installs it) is used only as a binary: the config is written
here and passed with `-c`, nothing from /etc/dovecot is read, and the system's service is never touched. Written
for Dovecot 2.3 (2.4 changed the config syntax). Quirks it works around are commented where they bite.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import tempfile
import weakref
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import aioimaplib

from tests.mailservers.certs import MailCerts

DOVECOT = os.environ.get("DOVECOT_PATH", "/usr/sbin/dovecot")
DOVEADM = os.environ.get("DOVEADM_PATH") or shutil.which("doveadm") or "/usr/bin/doveadm"

START_TIMEOUT = 15.0  # seconds until the IMAPS port accepts a login
STOP_TIMEOUT = 10.0  # seconds for a graceful stop before the process group is SIGKILLed
OP_TIMEOUT = 10.0  # seconds for one helper operation (connect, log in, command, log out) or doveadm call

# Dovecot 2.3's post-login CAPABILITY, minus IDLE, for `idle=False`. `imap_capability` cannot remove one item:
# it is either "+EXTRA" (appended) or the whole list. Pre-login, imap-login shows the same list and still appends
# STARTTLS (plain port) and AUTH=... itself; the list has to go pre-login too, because aioimaplib (and so the
# gateway) keeps the greeting's capabilities and only adds the post-login ones.
CAPABILITIES_WITHOUT_IDLE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
    "I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE "
    "SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
)

# Unprivileged accounts for a root-run server. Dovecot refuses to run imap-login as root ("This process must
# not be run as root") and mail processes as uid 0 ("Mail access not allowed for root", whatever
# first_valid_uid says). Debian's package creates dovenull for login processes; nobody exists everywhere.
_LOGIN_USERS = ("dovenull", "nobody")
_MAIL_USER = "nobody"


class DovecotError(RuntimeError):
    """The test server failed to start, stop or answer; the message carries the end of its log."""


class Dovecot:
    """One Dovecot IMAP server on 127.0.0.1: `port` speaks plain IMAP and offers STARTTLS, `tls_port` is IMAPS.

    `start()` picks two free ports; `restart()` keeps them and the mail, as a restarted server would. One user,
    `user` / `password`, with Maildir storage in `directory`/mail. The helpers (`deliver`, `uids`, ...) talk
    IMAPS as that user, each over a fresh connection, so they never hold a mailbox open between calls.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        directory: Path,
        certs: MailCerts,
        *,
        idle: bool = True,
        user: str = "support@example.com",
        password: str = "imap-test-password",
    ) -> None:
        for path in (directory, certs.cert_file, certs.key_file):
            # Paths go into dovecot.conf unquoted, and `%` would be expanded in home=.
            if re.search(r'[\s"%<>#]', str(path.resolve())):
                raise ValueError(f"Dovecot test paths cannot contain spaces, quotes, %, <, > or #: {path}")
        if re.search(r"[:\s]", user) or re.search(r"[:\n]", password):
            raise ValueError("user and password go into a passwd-file: no ':' (and no whitespace in user)")
        self.directory = directory.resolve()
        self.certs = certs
        self.idle = idle
        self.user = user
        self.password = password
        self.port = 0  # plain IMAP, STARTTLS offered; set by the first start()
        self.tls_port = 0  # implicit TLS (IMAPS)
        self.conf_path = self.directory / "dovecot.conf"
        self.log_path = self.directory / "dovecot.log"
        self.mail_dir = self.directory / "mail"  # <mail_dir>/<user>/Maildir
        self._stderr_path = self.directory / "dovecot.stderr"
        self._home = self.mail_dir / user
        self._process: asyncio.subprocess.Process | None = None
        self._run_dir: Path | None = None
        self._killed = False
        self._reaper: weakref.finalize | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Write the config, start `dovecot -F` and return once a login over IMAPS works. After `kill()` this
        is the restart: same ports, same mail."""
        if self._process is not None:
            if self._process.returncode is None and not self._killed:
                raise DovecotError("Dovecot is already running; use restart()")
            await self.stop()  # reap a killed or crashed server (and anything left of its group) first
        self.directory.mkdir(parents=True, exist_ok=True)
        self.mail_dir.mkdir(exist_ok=True)
        # Dovecot creates the Maildir but not the home above it, and logs a chdir() error per login until then.
        self._home.mkdir(exist_ok=True)
        (self.directory / "state").mkdir(exist_ok=True)
        pick_ports = self.port == 0
        try:
            for attempt in range(3):
                if pick_ports:
                    self.port, self.tls_port = _free_ports(2)
                try:
                    await self._launch()
                    return
                except _PortTaken:
                    # Another process took a port between our probe and Dovecot's bind: try two others. On a
                    # restart the ports are the point, so that is an error.
                    if not pick_ports or attempt == 2:
                        raise
        except BaseException:
            if pick_ports:
                self.port = self.tls_port = 0
            raise

    async def stop(self) -> None:
        """Shut the server down as `systemctl stop` does: SIGTERM to every process of it, the imap sessions
        first, so each client gets "* BYE Server shutting down." and then EOF. SIGKILL for anything still there
        after STOP_TIMEOUT. Returns when no process of this server is left."""
        process, self._process = self._process, None
        if process is None:
            return
        # start_new_session=True made the master's pid the group of everything it forks, imap processes that
        # changed uid included. SIGTERM to the master alone is not enough: it exits after ~1 s but leaves its
        # children (and their clients' connections) in place until they next talk to it; under systemd the
        # cgroup-wide SIGTERM that follows `doveadm stop` is what ends them. So the whole group gets it.
        pgid = process.pid
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                # The imap processes first, and alone: over TLS each session's bytes pass through an imap-login
                # process, and one SIGTERMed at the same moment drops the BYE on the floor about half the time.
                sessions = {pid for pid, name in _group_members(pgid).items() if name == "imap"}
                for pid in sessions:
                    _kill(pid, signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):  # a session that ignores it is SIGTERMed with the rest
                        while True:
                            if not sessions & _group_members(pgid).keys():
                                break
                            await asyncio.sleep(0.01)
                while True:
                    members = _group_members(pgid)
                    if not members:
                        break
                    if members.keys() == {pgid}:
                        # Only the master is left, waiting out its own timers (~1 s for the log process, 5 s
                        # for anvil) before exiting: every session is already closed, nothing is left to stop.
                        _kill(pgid, signal.SIGKILL)
                    else:
                        # Again and again: a child that died of the first SIGTERM before the master took its own
                        # can be respawned by the master (log, anvil), and the new one needs one too.
                        _killpg(pgid, signal.SIGTERM)
                    await asyncio.sleep(0.02)
                await process.wait()
        except TimeoutError:
            _killpg(pgid, signal.SIGKILL)
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
                while True:
                    if not _group_members(pgid):
                        break
                    await asyncio.sleep(0.01)
        self._killed = False
        if self._reaper is not None:
            self._reaper.detach()
            self._reaper = None
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def kill(self) -> None:
        """SIGKILL the whole server at once (a crash or power cut, not a shutdown): open connections just drop.
        Follow with `start()` (same ports, same mail) or `stop()` to reap it."""
        if self._process is not None and self._process.returncode is None:
            _killpg(self._process.pid, signal.SIGKILL)
            self._killed = True

    async def restart(self) -> None:
        """Stop, then start on the same ports with the same mail (UIDVALIDITY and UIDs survive)."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Dovecot:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- mailbox helpers (IMAPS as `user`) --------------------------------------------------------------------------

    async def deliver(self, raw: bytes, folder: str = "INBOX", *, flags: Iterable[str] = ()) -> int:
        """APPEND `raw` to `folder` (created if missing), as mail arriving would; returns its UID."""
        flag_list = " ".join(flags) or None
        async with self._session() as imap:
            response = await imap.append(raw, mailbox=_quote(folder), flags=flag_list)
            if response.result != "OK" and _has(response, b"TRYCREATE"):
                await _create(imap, folder)
                response = await imap.append(raw, mailbox=_quote(folder), flags=flag_list)
            _check(response, f"APPEND to {folder}")
        match = _search(response, rb"APPENDUID \d+ (\d+)")
        if match is None:
            raise DovecotError(f"APPEND to {folder}: no APPENDUID in {response.lines!r}")
        return int(match.group(1))

    async def uids(self, folder: str = "INBOX") -> list[int]:
        """The UIDs in `folder`, ascending."""
        async with self._session() as imap:
            await _examine(imap, folder)
            response = await imap.uid_search("ALL", charset=None)
            _check(response, f"UID SEARCH in {folder}")
        found: list[int] = []
        for line in response.lines[:-1]:  # the last line is the tagged "Search completed"
            # aioimaplib strips the "SEARCH" of the untagged reply; accept it either way.
            words = line.split()
            if words[:1] == [b"SEARCH"]:
                words = words[1:]
            if all(word.isdigit() for word in words):
                found.extend(int(word) for word in words)
        return sorted(found)

    async def flags(self, uid: int, folder: str = "INBOX") -> set[str]:
        """The flags of message `uid`, e.g. {"\\\\Seen"}. \\Recent is left out: it says which session saw the
        message first, not what a client did to it."""
        async with self._session() as imap:
            await _examine(imap, folder)
            response = await imap.uid("fetch", str(uid), "(FLAGS)")
            _check(response, f"UID FETCH {uid} in {folder}")
        for line in response.lines:
            uid_match = re.search(rb"\bUID (\d+)", line)
            flags_match = re.search(rb"\bFLAGS \(([^)]*)\)", line)
            if uid_match and flags_match and int(uid_match.group(1)) == uid:
                return {flag for flag in flags_match.group(1).decode().split() if flag != "\\Recent"}
        raise DovecotError(f"no message with UID {uid} in {folder}")

    async def uidvalidity(self, folder: str = "INBOX") -> int:
        return await self._status(folder, "UIDVALIDITY")

    async def message_count(self, folder: str = "INBOX") -> int:
        return await self._status(folder, "MESSAGES")

    async def create_folder(self, name: str) -> None:
        """CREATE `name` ("/" separates levels); one that already exists is fine."""
        async with self._session() as imap:
            await _create(imap, name)

    async def recreate_folder(self, name: str = "INBOX") -> int:
        """Give `name` a new, higher UIDVALIDITY, keeping its messages (and their UID numbers and flags), as when
        a server's indexes are rebuilt or a mailbox is restored: every UID a client kept for it is now void.
        Returns the new UIDVALIDITY.

        A session that has the folder selected gets "* BYE IMAP session state is inconsistent, please relogin."
        at its next command; one in IDLE hears nothing until then (its DONE still gets OK)."""
        old = await self.uidvalidity(name)
        new = old + 1
        # doveadm changes it beside the running server, through the server's own sockets in base_dir. Deleting
        # dovecot-uidlist and the index files works too, but races the imap processes that have them open.
        await self._doveadm("mailbox", "update", "-u", self.user, "--uid-validity", str(new), name)
        current = await self.uidvalidity(name)
        if current != new:
            raise DovecotError(f"UIDVALIDITY of {name} is {current} after setting it to {new}")
        return new

    # -- internals -------------------------------------------------------------------------------------------------

    async def _launch(self) -> None:
        if self._run_dir is None:
            # base_dir holds the unix sockets, and a socket path must fit in 108 bytes: a pytest tmp_path (plus
            # "login/imap-urlauth"...) can be longer, so the sockets live in a short dir of their own.
            self._run_dir = Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))
            self._run_dir.chmod(0o755)  # what the master wants (it warns and fixes a 0700 base_dir)
        self._write_config()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self._stderr_path.open("ab") as stderr:
            # Config errors are reported on stderr before the log file is set up; the rest goes to the log.
            self._process = await asyncio.create_subprocess_exec(
                DOVECOT,
                "-F",
                "-c",
                str(self.conf_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # its own process group: stop() and kill() reach every child
            )
        # A test that dies before stop() (or a helper dropped without it) must not leave a server running:
        # SIGKILL the group and remove the socket dir when this object is collected or the interpreter exits.
        self._reaper = weakref.finalize(self, _reap, self._process.pid, self._run_dir)
        try:
            await self._wait_ready(log_offset)
        except BaseException:
            await self.stop()  # never leave a half-started server behind
            raise

    async def _wait_ready(self, log_offset: int) -> None:
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        last_error: BaseException | None = None
        while loop.time() < deadline:
            if self._process.returncode is not None:
                tail = self._log_tail(log_offset)
                if "Address already in use" in tail:
                    raise _PortTaken(f"port {self.port} or {self.tls_port} on {self.host} is in use:\n{tail}")
                raise DovecotError(f"dovecot exited with status {self._process.returncode}:\n{tail}")
            try:
                async with asyncio.timeout(max(0.1, min(2.0, deadline - loop.time()))), self._session():
                    return
            except (OSError, TimeoutError, aioimaplib.AioImapException, DovecotError) as error:
                last_error = error
            await asyncio.sleep(0.05)
        raise DovecotError(
            f"Dovecot did not accept a login on {self.host}:{self.tls_port} within {START_TIMEOUT:g} s "
            f"(last error: {last_error!r}):\n{self._log_tail(log_offset)}"
        )

    def _log_tail(self, log_offset: int, lines: int = 30) -> str:
        text = ""
        for path, offset in ((self._stderr_path, 0), (self.log_path, log_offset)):
            with contextlib.suppress(OSError), path.open("rb") as file:
                file.seek(offset)
                text += file.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _write_config(self) -> None:
        assert self._run_dir is not None
        uid, gid = os.getuid(), os.getgid()
        passwd = self.directory / "passwd"
        passwd.write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        passwd.chmod(0o600)
        self.log_path.touch()
        if uid == 0:
            mail = pwd.getpwnam(_MAIL_USER)
            mail_uid, mail_gid = mail.pw_uid, mail.pw_gid
            login_user = next(name for name in _LOGIN_USERS if _user_exists(name))
            # The imap process runs as `nobody`, which may not get through a pytest tmp_path (0700, root's):
            # home=<mail_dir>/./<user> makes Dovecot chroot into mail_dir (as root) before dropping to that uid.
            os.chown(self.mail_dir, mail_uid, mail_gid)
            os.chown(self._home, mail_uid, mail_gid)
            home = f"{self.mail_dir}/./%u"
            privileges = f"""default_internal_user = root
default_internal_group = root
default_login_user = {login_user}
valid_chroot_dirs = {self.mail_dir}"""
            login_chroot = ""
        else:
            # As an ordinary user everything runs as that user; chroot needs root, so login and anvil (chrooted
            # by default) run without one.
            mail_uid, mail_gid = uid, gid
            home = f"{self.mail_dir}/%u"
            user_name, group_name = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
            privileges = f"""default_internal_user = {user_name}
default_internal_group = {group_name}
default_login_user = {user_name}
service anvil {{
  chroot =
}}"""
            login_chroot = "\n  chroot ="
        capability = "" if self.idle else f"imap_capability = {CAPABILITIES_WITHOUT_IDLE}"
        self.conf_path.write_text(
            f"""# Written by tests/mailservers/dovecot.py for one test server; self-contained, reads nothing in /etc.
base_dir = {self._run_dir}
state_dir = {self.directory / "state"}
log_path = {self.log_path}
info_log_path = {self.log_path}
auth_verbose = yes
protocols = imap
listen = {self.host}
shutdown_clients = yes
{privileges}
ssl = yes
ssl_cert = <{self.certs.cert_file.resolve()}
ssl_key = <{self.certs.key_file.resolve()}
# Tests also log in on the plain port without STARTTLS (the gateway's IMAP_TLS=none).
disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password is answered in ~0.5 s (the auth process checks its failure queue twice a second), not 2 s.
# Further wrong ones from 127.0.0.1 soon after wait ~4 s more (anvil's auth penalty per client IP).
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.directory / "passwd"}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={home}
}}
first_valid_uid = {mail_uid}
first_valid_gid = {mail_gid}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
# The gateway, the helpers and IDLE sessions all come from 127.0.0.1 as one user: the default 10 is too few.
mail_max_userip_connections = 100
# IDLE learns of new mail through inotify at once; this is only the fallback (default 30 s).
mailbox_idle_check_interval = 1 secs
{capability}
service imap-login {{{login_chroot}
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.tls_port}
    ssl = yes
  }}
}}
"""
        )

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[aioimaplib.IMAP4_SSL]:
        """A logged-in IMAPS connection; the whole use of it is bounded by OP_TIMEOUT."""
        async with asyncio.timeout(OP_TIMEOUT):
            imap = aioimaplib.IMAP4_SSL(
                self.host, self.tls_port, ssl_context=self.certs.client_context(), timeout=OP_TIMEOUT
            )
            try:
                await imap.wait_hello_from_server()
                _check(await imap.login(self.user, self.password), "LOGIN")
                yield imap
                with contextlib.suppress(Exception):
                    await imap.logout()
            finally:
                _close(imap)

    async def _status(self, folder: str, item: str) -> int:
        async with self._session() as imap:
            response = await imap.status(_quote(folder), f"({item})")
            _check(response, f"STATUS {folder}")
        match = _search(response, rb"\b" + item.encode() + rb" (\d+)")
        if match is None:
            raise DovecotError(f"STATUS {folder}: no {item} in {response.lines!r}")
        return int(match.group(1))

    async def _doveadm(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            DOVEADM,
            "-c",
            str(self.conf_path),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise DovecotError(f"doveadm {' '.join(args)} took over {OP_TIMEOUT:g} s") from None
        if process.returncode != 0:
            raise DovecotError(f"doveadm {' '.join(args)} exited with {process.returncode}: {err.decode().strip()}")
        return out.decode()


class _PortTaken(DovecotError):
    pass


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (all bound at once, so they differ)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap(pgid: int, run_dir: Path) -> None:
    _killpg(pgid, signal.SIGKILL)
    shutil.rmtree(run_dir, ignore_errors=True)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _group_members(pgid: int) -> dict[int, str]:
    """pid -> command name of each process still running in group `pgid`. Zombies don't count: children of a
    SIGKILLed master are reparented to pid 1, and a container's pid 1 may never reap them."""
    members: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces or ")", so split at the last ")".
        head, _, rest = stat.rpartition(")")
        fields = rest.split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members[int(entry.name)] = head.partition("(")[2]
    return members


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _quote(mailbox: str) -> str:
    """An IMAP quoted string; aioimaplib sends mailbox names as given."""
    if not mailbox.isascii():
        raise ValueError(f"non-ASCII mailbox names need modified UTF-7, which this helper does not do: {mailbox!r}")
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _examine(imap: aioimaplib.IMAP4_SSL, folder: str) -> None:
    """EXAMINE, not SELECT: read-only, so the helper looking does not take \\Recent away from the gateway."""
    _check(await imap.examine(_quote(folder)), f"EXAMINE {folder}")
    # aioimaplib moves to SELECTED state after SELECT only, and refuses SEARCH or FETCH before it.
    imap.protocol.state = aioimaplib.SELECTED


async def _create(imap: aioimaplib.IMAP4_SSL, folder: str) -> None:
    response = await imap.create(_quote(folder))
    if response.result != "OK" and not _has(response, b"ALREADYEXISTS"):
        _check(response, f"CREATE {folder}")


def _check(response: aioimaplib.Response, what: str) -> None:
    if response.result != "OK":
        raise DovecotError(f"{what}: {response.result} {b' '.join(response.lines).decode(errors='replace')}")


def _has(response: aioimaplib.Response, text: bytes) -> bool:
    return any(text in line for line in response.lines)


def _search(response: aioimaplib.Response, pattern: bytes) -> re.Match[bytes] | None:
    for line in response.lines:
        match = re.search(pattern, line)
        if match is not None:
            return match
    return None


def _close(imap: aioimaplib.IMAP4_SSL) -> None:
    """Drop the connection whatever state it is in: aioimaplib has no close besides LOGOUT, which needs a live
    session, so this reaches into its connect task and transport."""
    if not imap._client_task.done():
        imap._client_task.cancel()
    transport = getattr(imap.protocol, "transport", None)
    if transport is not None:
        transport.close()
