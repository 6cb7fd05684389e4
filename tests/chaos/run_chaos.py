"""`make chaos`: web chat, Telegram, SMS and email customers under load while the gateway and the database are
killed -9.

    python -m tests.chaos.run_chaos [--gateway-kills 10] [--db-kills 3] [--customers 6]
        [--telegram-customers 3] [--sms-customers 2] [--email-customers 2] [--seed N]

Process layout (as `make bench`): this process runs the customers; SecantusDB runs as its own
process with `--sync-on-commit` on a storage path in a temp dir; the gateway is `bench.serve_gateway`
(the product's app) in a child process pointed at it. While the customers talk, the gateway is killed
-9 and restarted on the same port after a short random pause, and so is the database on the same
storage path (the gateway must reconnect by itself). The Telegram customers write through a fake Bot
API (tests/fakes/telegram_api.py) that runs in this process, so it outlives every kill; the gateway
long-polls it (TELEGRAM_MODE=polling). The SMS customers text through a fake Twilio API
(tests/fakes/twilio_api.py), also in this process: it signs and posts their messages to the gateway's
webhook, retrying failed POSTs as Twilio does with `#rc=3&rp=all`, and records the replies the gateway
sends through its Messages.json. The email customers write into a real IMAP mailbox (Dovecot,
tests/mailservers/dovecot.py), which the gateway reads (IDLE), and get the replies it sends through a real
SMTP server (aiosmtpd, tests/mailservers/smtp.py, STARTTLS): both run in this process too, with TLS from a
test CA the gateway trusts (EMAIL_TLS_CA_FILE). Then, after a settle period, tests/chaos/checks.py,
tests/chaos/telegram_checks.py, tests/chaos/twilio_checks.py and tests/chaos/email_checks.py compare the
database with what every client saw. Exit code 0 only if every check holds.
See docs/reliability.md. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import aioimaplib
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from bench.harness import die_with_parent
from bench.processes import BenchError, ChildServer, free_port, log_tail
from bench.webchat_roundtrip import answered_questions
from gateway.embedded_db import find_server_command
from tests.chaos.checks import Verdict, verify
from tests.chaos.customers import Customer
from tests.chaos.email_checks import EmailVerdict, email_verdict, verify_email
from tests.chaos.email_customers import SUPPORT_FROM, EmailCustomer
from tests.chaos.telegram_checks import TelegramVerdict, telegram_verdict, verify_telegram
from tests.chaos.telegram_customers import ChaosTelegramApi, TelegramCustomer
from tests.chaos.twilio_checks import TwilioVerdict, twilio_verdict, verify_twilio
from tests.chaos.twilio_customers import SMS_FROM, TwilioCustomer
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.twilio_api import FakeTwilioApi
from tests.mailservers.certs import MailCerts, make_certs
from tests.mailservers.dovecot import Dovecot, DovecotError
from tests.mailservers.smtp import SmtpServer

HOST = "127.0.0.1"
DB_NAME = "chaos"
# The gateway checks the shape (BotFather's "<bot id>:<secret>"); the fake accepts only this one.
TELEGRAM_TOKEN = "123456789:AAHfakeTokenForGatewayTests-0123456789"


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    customers: int = 6
    telegram_customers: int = 3  # each in its own private chat, through the fake Bot API
    telegram_poll_timeout_seconds: int = 2  # getUpdates long-poll timeout (TELEGRAM_POLL_TIMEOUT_SECONDS)
    telegram_send_latency_seconds: float = 0.0  # the fake's sendMessage answers this long after showing it
    telegram_max_messages: int | None = None  # per Telegram customer; None: max_messages
    sms_customers: int = 2  # each with its own phone number, through the fake Twilio API
    sms_max_messages: int | None = None  # per SMS customer; None: max_messages
    email_customers: int = 0  # each with its own address, mailing a real IMAP mailbox; replies by real SMTP
    email_max_messages: int | None = None  # per email customer; None: max_messages
    gateway_kills: int = 10
    db_kills: int = 3
    gap_seconds: tuple[float, float] = (2.0, 5.0)  # load between two kills
    down_seconds: tuple[float, float] = (0.2, 2.0)  # how long a killed process stays dead
    answer_wait_seconds: float = 6.0  # a customer asks the next question after the answer, or this long
    think_seconds: tuple[float, float] = (0.1, 0.8)
    max_messages: int = 200  # per customer; sending also stops when the last kill has recovered
    settle_seconds: float = 60.0  # after sending stops: at most this long for everything to be consistent
    timeout_seconds: float = 900.0  # the whole run, start-up to the last check
    seed: int | None = None
    work_dir: Path | None = None
    gateway_env: tuple[tuple[str, str], ...] = ()
    db_sync_on_commit: bool = True  # False: the database as the product started it before issue 8


@dataclass
class ChaosResult:
    config: ChaosConfig
    seed: int
    verdict: Verdict = field(default_factory=Verdict)
    telegram: TelegramVerdict = field(default_factory=telegram_verdict)
    sms: TwilioVerdict = field(default_factory=twilio_verdict)
    email: EmailVerdict = field(default_factory=email_verdict)
    harness_error: str = ""
    kills: Counter[str] = field(default_factory=Counter)
    restart_seconds: dict[str, list[float]] = field(default_factory=lambda: {"gateway": [], "database": []})
    chaos_seconds: float = 0.0
    settle_seconds: float = 0.0
    total_seconds: float = 0.0
    sent: int = 0
    sends: int = 0
    acked: int = 0
    connects: int = 0
    client_errors: Counter[str] = field(default_factory=Counter)
    telegram_sent: int = 0  # distinct messages the Telegram customers wrote
    telegram_updates: int = 0  # updates that carried them (with re-deliveries)
    telegram_unanswered_in_time: int = 0  # answer not seen when the customer moved on (or stopped)
    telegram_send_calls: int = 0  # sendMessage calls the fake received
    telegram_get_updates_calls: int = 0
    sms_sent: int = 0  # distinct messages the SMS customers texted
    sms_rounds: int = 0  # webhook deliveries of them (with the customers' re-sends)
    sms_posts: int = 0  # webhook POSTs (with Twilio's retries)
    sms_acked: int = 0  # messages the gateway answered 200
    sms_unanswered_in_time: int = 0  # answer not seen when the customer moved on (or stopped)
    sms_failures: Counter[str] = field(default_factory=Counter)  # failed POSTs: HTTP status or exception
    sms_create_calls: int = 0  # Messages.json create calls the fake received
    sms_callbacks: int = 0  # status callbacks the fake posted
    sms_callback_failures: Counter[str] = field(default_factory=Counter)  # not answered 2xx: status or error
    email_sent: int = 0  # distinct mails the email customers wrote
    email_delivered: int = 0  # of them, those the mailbox took (APPEND answered with a UID)
    email_unanswered_in_time: int = 0  # answer not seen when the customer moved on (or stopped)
    email_failures: Counter[str] = field(default_factory=Counter)  # failed APPENDs: exception name
    email_smtp_mails: int = 0  # mails the SMTP server accepted (with resends)
    email_smtp_sessions: int = 0  # SMTP connections the gateway opened
    work_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.harness_error and self.verdict.ok and self.telegram.ok and self.sms.ok and self.email.ok

    def summary(self) -> str:
        c = self.config
        restarts = "; ".join(
            f"{name} restart {sum(times) / len(times):.1f} s avg, {max(times):.1f} s max"
            for name, times in self.restart_seconds.items()
            if times
        )
        lines = [
            f"chaos: seed {self.seed}, {c.customers} customers, gateway killed {self.kills['gateway']}x "
            f"(of {c.gateway_kills}), database killed {self.kills['database']}x (of {c.db_kills}), "
            f"database {'with' if c.db_sync_on_commit else 'WITHOUT'} --sync-on-commit",
            f"chaos: {self.sent} messages sent ({self.sends} frames with re-sends), {self.acked} acknowledged, "
            f"{self.connects} WebSocket connects; stored {self.verdict.stored_customer_messages} customer "
            f"messages, {self.verdict.stored_replies} replies ({self.verdict.handoffs} handoffs)",
            *([self._telegram_line()] if c.telegram_customers else []),
            *([self._sms_line()] if c.sms_customers else []),
            *([self._email_line()] if c.email_customers else []),
            f"chaos: {restarts}",
            f"chaos: load under kills {self.chaos_seconds:.1f} s, settle {self.settle_seconds:.1f} s, "
            f"total {self.total_seconds:.1f} s; client error frames: {dict(self.client_errors) or 'none'}",
            "",
            self.verdict.table(),
        ]
        if c.telegram_customers:
            lines += ["", "telegram:", self.telegram.table()]
        if c.sms_customers:
            lines += ["", "sms:", self.sms.table()]
        if c.email_customers:
            lines += ["", "email:", self.email.table()]
        if self.harness_error:
            lines.append(f"\nharness error: {self.harness_error}")
        lines.append(f"\nchaos: {'PASS' if self.ok else 'FAIL'} (logs in {self.work_dir})")
        return "\n".join(lines)

    def _telegram_line(self) -> str:
        t = self.telegram
        return (
            f"chaos: telegram: {self.config.telegram_customers} customers (polling, "
            f"{self.config.telegram_poll_timeout_seconds} s long poll, sendMessage latency "
            f"{self.config.telegram_send_latency_seconds:g} s), {self.telegram_sent} messages sent "
            f"({self.telegram_updates} updates with re-deliveries, {self.telegram_unanswered_in_time} with no "
            f"answer seen within the wait); stored {t.stored_customer_messages} customer messages, "
            f"{t.stored_replies} replies ({t.handoffs} handoffs); {t.delivered} bot messages in the chats from "
            f"{self.telegram_send_calls} sendMessage calls; {self.telegram_get_updates_calls} getUpdates calls, "
            f"offset {t.offset}"
        )

    def _sms_line(self) -> str:
        s = self.sms
        failures = ", ".join(f"{kind} {n}" for kind, n in self.sms_failures.most_common()) or "none"
        callback_failures = ", ".join(f"{kind} {n}" for kind, n in self.sms_callback_failures.most_common()) or "none"
        return (
            f"chaos: sms: {self.config.sms_customers} customers (webhook retried 3x, 1 s apart), "
            f"{self.sms_sent} messages sent ({self.sms_rounds} deliveries with re-sends, {self.sms_posts} POSTs "
            f"with retries; failed POSTs: {failures}), {self.sms_acked} acknowledged (200), "
            f"{s.not_acknowledged} never acknowledged and not stored (Twilio error 11200), "
            f"{s.not_acknowledged_stored} never acknowledged but stored, {self.sms_unanswered_in_time} with no "
            f"answer seen within the wait; stored {s.stored_customer_messages} customer messages, "
            f"{s.stored_replies} replies ({s.handoffs} handoffs); {s.delivered} SMS to the customers from "
            f"{self.sms_create_calls} Messages.json calls; {self.sms_callbacks} status callbacks, "
            f"{self.sms_callback_failures.total()} failed ({callback_failures})"
        )

    def _email_line(self) -> str:
        e = self.email
        failures = ", ".join(f"{kind} {n}" for kind, n in self.email_failures.most_common()) or "none"
        position = f"UIDVALIDITY {e.position[0]} last UID {e.position[1]}" if e.position else "none"
        return (
            f"chaos: email: {self.config.email_customers} customers (IMAP IDLE on Dovecot over TLS, replies by "
            f"SMTP with STARTTLS), {self.email_sent} mails written, {self.email_delivered} delivered to the "
            f"mailbox (failed APPENDs: {failures}), {self.email_unanswered_in_time} with no answer seen within "
            f"the wait; stored {e.stored_customer_messages} customer mails, {e.stored_replies} replies "
            f"({e.handoffs} handoffs); {e.answered_by_mail} answered by a reply mail (In-Reply-To); "
            f"{e.delivered} reply mails received, from {self.email_smtp_mails} the SMTP server accepted "
            f"({e.resent} resent after a crash under the same Message-ID) over {self.email_smtp_sessions} "
            f"SMTP sessions; INBOX {e.mailbox_mails} mails, position {position}"
        )


class DatabaseProcess:
    """SecantusDB as its own process on a fixed port and storage path, so it can be killed and restarted."""

    def __init__(self, storage: Path, log_path: Path, *, sync_on_commit: bool = True) -> None:
        self.storage = storage
        self.sync_on_commit = sync_on_commit
        self.log_path = log_path
        self.port = free_port(HOST)
        self.uri = f"mongodb://{HOST}:{self.port}/?directConnection=true"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60.0) -> None:
        command = find_server_command()
        if command is None:
            raise BenchError("secantusd-py is not installed (make test installs it)")
        self.storage.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            # The product's command line (gateway/embedded_db.py), with the journaled-commit flag spelled out.
            self.process = await asyncio.create_subprocess_exec(
                command,
                *("--host", HOST, "--port", str(self.port), "--storage-path", str(self.storage)),
                *(["--sync-on-commit"] if self.sync_on_commit else []),
                *("--log-level", "WARNING"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        client: AsyncMongoClient = AsyncMongoClient(self.uri, serverSelectionTimeoutMS=500)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self.process.returncode is not None:
                        raise BenchError(f"database exited with {self.process.returncode}:\n{log_tail(self.log_path)}")
                    with contextlib.suppress(PyMongoError):
                        await client.admin.command("ping")
                        return
                    await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


async def kill_gateway(gateway: ChildServer) -> None:
    process = gateway.process
    if process is not None and process.returncode is None:
        process.kill()  # SIGKILL: no shutdown hook, no drain, like a power cut or the OOM killer
        await process.wait()


@contextlib.contextmanager
def environment(values: tuple[tuple[str, str], ...]) -> Iterator[None]:
    """Extra settings for the gateway children (they inherit this process's environment)."""
    saved = {name: os.environ.get(name) for name, _ in values}
    os.environ.update(dict(values))
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


async def run(config: ChaosConfig) -> ChaosResult:
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(1 << 32)
    result = ChaosResult(config, seed)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work = config.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-")))
        work.mkdir(parents=True, exist_ok=True)
        if config.work_dir is not None and any(work.iterdir()):
            # A database and a mailbox left by an earlier run would be counted as this run's.
            raise BenchError(f"--work-dir {work} is not empty: give an empty or new folder")
        result.work_dir = work
        stack.enter_context(environment(config.gateway_env))
        try:
            async with asyncio.timeout(config.timeout_seconds):
                await _run(config, random.Random(seed), work, result)
        except TimeoutError:
            result.harness_error = f"the run did not finish within {config.timeout_seconds:.0f} s"
        except BenchError as exc:
            result.harness_error = str(exc)
        result.total_seconds = time.monotonic() - started
        if not result.ok and config.work_dir is None:
            # Keep the logs of a failed run for the reader; the temp dir would delete them.
            kept = Path(tempfile.mkdtemp(prefix="chaos-failed-"))
            for log in work.glob("*.log"):
                (kept / log.name).write_bytes(log.read_bytes())
            result.work_dir = kept
    return result


async def _run(config: ChaosConfig, rng: random.Random, work: Path, result: ChaosResult) -> None:
    database = DatabaseProcess(work / "db", work / "secantusd.log", sync_on_commit=config.db_sync_on_commit)
    gateway_args = ["--mongodb-uri", database.uri, "--db", DB_NAME, "--data-dir", str(work / "gateway-data")]
    gateway = ChildServer("gateway", "bench.serve_gateway", gateway_args, work / "gateway.log")
    customers: list[Customer] = []
    telegram_customers: list[TelegramCustomer] = []
    sms_customers: list[TwilioCustomer] = []
    email_customers: list[EmailCustomer] = []
    questions, _ = answered_questions()
    # The mail servers live here too: the mailbox keeps the customers' mail and the SMTP server what the
    # gateway sent, across every kill. Started first, so that a failure to start leaves nothing running.
    mail: MailServers | None = None
    if config.email_customers:
        mail = await MailServers.start(work)
    # Telegram's side lives here, not in the gateway: it keeps its updates and chats across every kill.
    telegram: FakeTelegramApi | None = None
    if config.telegram_customers:
        telegram = await ChaosTelegramApi(TELEGRAM_TOKEN, send_latency=config.telegram_send_latency_seconds).start()
    # Twilio's side too: it keeps what the gateway sent, and posts the customers' messages (with retries).
    twilio: FakeTwilioApi | None = None
    if config.sms_customers:
        twilio = await FakeTwilioApi().start()
    env = (
        (telegram_env(telegram, config) if telegram is not None else ())
        + (twilio_env(twilio, gateway) if twilio is not None else ())
        + (mail.env() if mail is not None else ())
    )
    try:
        with environment(env):
            await database.start()
            await gateway.start()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                stop_sending = asyncio.Event()
                talkers = []
                for index in range(config.customers):
                    customer = Customer(
                        index,
                        gateway.base_url,
                        http,
                        questions,
                        random.Random(rng.random()),
                        answer_wait=config.answer_wait_seconds,
                        think=config.think_seconds,
                    )
                    customers.append(customer)
                    talkers.append(customer.start(stop_sending, config.max_messages))
                if telegram is not None:
                    for index in range(config.telegram_customers):
                        person = TelegramCustomer(
                            index,
                            telegram,
                            questions,
                            random.Random(rng.random()),
                            answer_wait=config.answer_wait_seconds,
                            think=config.think_seconds,
                        )
                        telegram_customers.append(person)
                        talkers.append(person.start(stop_sending, config.telegram_max_messages or config.max_messages))
                if twilio is not None:
                    for index in range(config.sms_customers):
                        texter = TwilioCustomer(
                            index,
                            twilio,
                            gateway.base_url,
                            questions,
                            random.Random(rng.random()),
                            answer_wait=config.answer_wait_seconds,
                            think=config.think_seconds,
                        )
                        sms_customers.append(texter)
                        talkers.append(texter.start(stop_sending, config.sms_max_messages or config.max_messages))
                if mail is not None:
                    for index in range(config.email_customers):
                        writer = EmailCustomer(
                            index,
                            mail.dovecot,
                            mail.smtp,
                            questions,
                            random.Random(rng.random()),
                            answer_wait=config.answer_wait_seconds,
                            think=config.think_seconds,
                        )
                        email_customers.append(writer)
                        talkers.append(writer.start(stop_sending, config.email_max_messages or config.max_messages))
                chaos_started = time.monotonic()
                await _kill_repeatedly(config, rng, database, gateway, result)
                await asyncio.sleep(max(config.gap_seconds))  # load after the last restart, too
                stop_sending.set()
                await asyncio.gather(*talkers)
                result.chaos_seconds = time.monotonic() - chaos_started
                settle_started = time.monotonic()
                result.verdict, result.telegram, result.sms, result.email = await _settle(
                    config,
                    database,
                    customers,
                    telegram,
                    telegram_customers,
                    twilio,
                    sms_customers,
                    mail,
                    email_customers,
                )
                result.settle_seconds = time.monotonic() - settle_started
    finally:
        for customer in customers:
            await customer.close()
            result.sent += len(customer.sent)
            result.sends += sum(m.sends for m in customer.sent)
            result.acked += sum(1 for m in customer.sent if m.acks)
            result.connects += customer.connects
            result.client_errors.update(customer.errors)
        for person in telegram_customers:
            await person.close()
            result.telegram_sent += len(person.sent)
            result.telegram_updates += person.deliveries
            result.telegram_unanswered_in_time += sum(1 for m in person.sent if not m.answered)
        for texter in sms_customers:
            await texter.close()
            result.sms_sent += len(texter.sent)
            result.sms_rounds += texter.rounds
            result.sms_posts += texter.posts
            result.sms_acked += sum(1 for m in texter.sent if m.acked)
            result.sms_unanswered_in_time += sum(1 for m in texter.sent if not m.answered)
            result.sms_failures.update(texter.failures)
        for writer in email_customers:
            await writer.close()
            result.email_sent += len(writer.sent)
            result.email_delivered += sum(1 for m in writer.sent if m.delivered)
            result.email_unanswered_in_time += sum(1 for m in writer.sent if not m.answered)
            result.email_failures.update(writer.failures)
        await gateway.stop()
        await database.stop()
        if telegram is not None:
            result.telegram_send_calls = len(telegram.calls_to("sendMessage"))
            result.telegram_get_updates_calls = len(telegram.calls_to("getUpdates"))
            write_transcripts(work / "telegram-chats.log", telegram, telegram_customers)
            await telegram.close()
        if twilio is not None:
            result.sms_create_calls = sum(
                1 for c in twilio.calls if c.method == "POST" and c.path.endswith("/Messages.json")
            )
            result.sms_callbacks = len(twilio.callback_results)
            result.sms_callback_failures.update(
                str(d.status) if d.status is not None else (d.error or "?").partition("(")[0]
                for d in twilio.callback_results
                if d.status is None or not 200 <= d.status < 300
            )
            write_sms_transcripts(work / "sms-numbers.log", twilio, sms_customers)
            await twilio.close()
        if mail is not None:
            result.email_smtp_mails = len(mail.smtp.mails)
            result.email_smtp_sessions = mail.smtp.connections
            write_mail_transcripts(work / "email-mails.log", mail.smtp, email_customers)
            await mail.stop(work)


def write_transcripts(path: Path, api: FakeTelegramApi, customers: list[TelegramCustomer]) -> None:
    """What each Telegram customer wrote and what its chat shows, one JSON line each, for the reader of a
    failed run (the fake lives only as long as this process)."""
    with path.open("w") as out:
        for person in customers:
            for sent in person.sent:
                row = {"chat": sent.chat_id, "customer_message_id": sent.message_id, "order": sent.order}
                row |= {"update_ids": sent.update_ids, "answered_in_time": sent.answered, "text": sent.text}
                out.write(json.dumps(row) + "\n")
            for shown in api.sent_messages(person.chat_id):
                row = {"chat": person.chat_id, "bot_message_id": shown["message_id"], "date": shown["date"]}
                out.write(json.dumps(row | {"text": shown.get("text", "")[:80]}) + "\n")


def write_sms_transcripts(path: Path, api: FakeTwilioApi, customers: list[TwilioCustomer]) -> None:
    """What each SMS customer texted (and how each POST went) and what reached its number, one JSON line
    each, for the reader of a failed run."""
    with path.open("w") as out:
        for texter in customers:
            for sent in texter.sent:
                row = {"number": sent.number, "message_sid": sent.message_sid, "order": sent.order}
                row |= {"rounds": sent.rounds, "posts": sent.posts, "statuses": sent.statuses, "errors": sent.errors}
                row |= {"posted_at": [round(t, 2) for t in sent.posted_at]}
                row |= {"answered_in_time": sent.answered, "text": sent.text}
                out.write(json.dumps(row) + "\n")
            for shown in api.messages_to(texter.number):
                row = {"number": texter.number, "sid": shown.sid, "created_at": shown.created_at.isoformat()}
                out.write(json.dumps(row | {"status": shown.status, "body": shown.body[:80]}) + "\n")


def write_mail_transcripts(path: Path, smtp: SmtpServer, customers: list[EmailCustomer]) -> None:
    """What each email customer mailed (and the UIDs the mailbox gave it) and every mail the SMTP server
    accepted for its address, one JSON line each, for the reader of a failed run."""
    with path.open("w") as out:
        for writer in customers:
            for sent in writer.sent:
                row = {"address": sent.address, "message_id": sent.message_id, "order": sent.order}
                row |= {"uids": sent.uids, "errors": sent.errors, "answered_in_time": sent.answered}
                out.write(json.dumps(row | {"text": sent.text}) + "\n")
            for received in smtp.mails_to(writer.address):
                message = received.message
                row = {"address": writer.address, "reply_message_id": str(message.get("Message-ID") or "")}
                row |= {"in_reply_to": str(message.get("In-Reply-To") or ""), "date": str(message.get("Date") or "")}
                body = message.get_body(preferencelist=("plain",))
                text = body.get_content() if body is not None else ""
                out.write(json.dumps(row | {"text": " ".join(text.split())[:80]}) + "\n")


class MailServers:
    """The email customers' side: a Dovecot holding the support mailbox the gateway reads over IMAPS, and an
    SMTP server (STARTTLS, AUTH) the gateway sends its replies through, with certificates from a test CA."""

    smtp_username = "gateway"
    smtp_password = "smtp-test-password"

    def __init__(self, certs: MailCerts, dovecot: Dovecot, smtp: SmtpServer) -> None:
        self.certs = certs
        self.dovecot = dovecot
        self.smtp = smtp

    @classmethod
    async def start(cls, work: Path) -> MailServers:
        certs = make_certs(work / "mail-certs")
        dovecot = Dovecot(work / "dovecot", certs)
        try:
            await dovecot.start()
        except DovecotError as exc:
            raise BenchError(f"the IMAP server (Dovecot) did not start: {exc}") from exc
        try:
            smtp = SmtpServer(certs, mode="starttls", username=cls.smtp_username, password=cls.smtp_password).start()
        except BaseException:
            await dovecot.stop()
            raise
        return cls(certs, dovecot, smtp)

    def env(self) -> tuple[tuple[str, str], ...]:
        """The gateway's email settings: IMAP over implicit TLS on Dovecot's IMAPS port, replies by SMTP with
        STARTTLS, both verified against the test CA; `localhost` is the name on the servers' certificate. No
        EMAIL_INBOUND_SECRET: mail comes only from the mailbox."""
        return (
            ("EMAIL_FROM", SUPPORT_FROM),
            ("EMAIL_TLS_CA_FILE", str(self.certs.ca_file)),
            ("SMTP_HOST", self.smtp.server_hostname),
            ("SMTP_PORT", str(self.smtp.port)),
            ("SMTP_USERNAME", self.smtp_username),
            ("SMTP_PASSWORD", self.smtp_password),
            ("SMTP_TLS", "starttls"),
            ("IMAP_HOST", "localhost"),
            ("IMAP_PORT", str(self.dovecot.tls_port)),
            ("IMAP_TLS", "tls"),
            ("IMAP_USERNAME", self.dovecot.user),
            ("IMAP_PASSWORD", self.dovecot.password),
            ("IMAP_FOLDER", "INBOX"),
        )

    async def stop(self, work: Path) -> None:
        self.smtp.stop()
        await self.dovecot.stop()
        # Beside the other logs, so a failed run keeps it.
        if self.dovecot.log_path.exists():
            (work / "dovecot.log").write_bytes(self.dovecot.log_path.read_bytes())


def twilio_env(api: FakeTwilioApi, gateway: ChildServer) -> tuple[tuple[str, str], ...]:
    """The gateway's Twilio settings: SMS through the fake's REST API. PUBLIC_BASE_URL is exactly where the
    customers post (the gateway checks X-Twilio-Signature over it) and where status callbacks go."""
    return (
        ("TWILIO_ACCOUNT_SID", api.account_sid),
        ("TWILIO_AUTH_TOKEN", api.auth_token),
        ("TWILIO_SMS_FROM", SMS_FROM),
        ("TWILIO_API_URL", api.url),
        ("PUBLIC_BASE_URL", gateway.base_url),
    )


def telegram_env(api: FakeTelegramApi, config: ChaosConfig) -> tuple[tuple[str, str], ...]:
    """The gateway's Telegram settings: long polling against the fake (the gateway adds /bot<token>/)."""
    return (
        ("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN),
        ("TELEGRAM_API_URL", api.base_url.removesuffix("/bot")),
        ("TELEGRAM_MODE", "polling"),
        ("TELEGRAM_POLL_TIMEOUT_SECONDS", str(config.telegram_poll_timeout_seconds)),
    )


async def _kill_repeatedly(
    config: ChaosConfig, rng: random.Random, database: DatabaseProcess, gateway: ChildServer, result: ChaosResult
) -> None:
    """Kill -9 the gateway and the database in a random order, one at a time, each back after a pause."""
    victims = ["gateway"] * config.gateway_kills + ["database"] * config.db_kills
    rng.shuffle(victims)
    for victim in victims:
        await asyncio.sleep(rng.uniform(*config.gap_seconds))
        if victim == "gateway":
            await kill_gateway(gateway)
        else:
            await database.kill()
        result.kills[victim] += 1
        print(f"chaos: killed the {victim} (-9), {result.kills[victim]} so far", file=sys.stderr, flush=True)
        await asyncio.sleep(rng.uniform(*config.down_seconds))
        restart = time.monotonic()
        await (gateway.start() if victim == "gateway" else database.start())
        result.restart_seconds[victim].append(time.monotonic() - restart)


async def _settle(
    config: ChaosConfig,
    database: DatabaseProcess,
    customers: list[Customer],
    telegram: FakeTelegramApi | None,
    telegram_customers: list[TelegramCustomer],
    twilio: FakeTwilioApi | None,
    sms_customers: list[TwilioCustomer],
    mail: MailServers | None,
    email_customers: list[EmailCustomer],
) -> tuple[Verdict, TelegramVerdict, TwilioVerdict, EmailVerdict]:
    """Check until everything holds (twice, 2 s apart) or settle_seconds pass; the last verdict stands.

    Clients are still connected and re-sending meanwhile, and the gateway's recovery runs: a violation
    that heals within the settle period is not one; one that remains at the end is. (The fake Bot API
    keeps every update the gateway has not confirmed, and the outbox retries what it has not sent; an SMS
    the gateway acknowledged is stored, so only its answer can still be on its way; mail waits in the
    mailbox until the gateway has stored it.)
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.settle_seconds
    client: AsyncMongoClient = AsyncMongoClient(database.uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    try:
        db = client[DB_NAME]
        passed_once = False
        while True:
            verdict = await verify(db, customers)
            tg = await verify_telegram(db, telegram, telegram_customers) if telegram is not None else telegram_verdict()
            sms = await verify_twilio(db, twilio, sms_customers) if twilio is not None else twilio_verdict()
            mails = await _verify_mail(db, mail, email_customers) if mail is not None else email_verdict()
            ok = verdict.ok and tg.ok and sms.ok and mails.ok
            if ok and passed_once:
                return verdict, tg, sms, mails
            passed_once = ok
            if loop.time() >= deadline:
                return verdict, tg, sms, mails
            await asyncio.sleep(2.0 if ok else 1.0)
    finally:
        await client.close()


async def _verify_mail(db: AsyncDatabase, mail: MailServers, customers: list[EmailCustomer]) -> EmailVerdict:
    try:
        return await verify_email(db, mail.dovecot, mail.smtp, customers)
    except (DovecotError, aioimaplib.AioImapException, OSError, TimeoutError) as exc:
        # The checks could not read the mailbox: the harness's failure, not the gateway's.
        raise BenchError(f"reading the IMAP mailbox for the checks failed: {exc!r}") from exc


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name, value


def parse_args(argv: list[str] | None = None) -> ChaosConfig:
    parser = argparse.ArgumentParser(
        description="Kill -9 the gateway and the database under web chat, Telegram, SMS and email load."
    )
    parser.add_argument("--customers", type=int, default=6)
    parser.add_argument(
        "--telegram-customers", type=int, default=3, help="Telegram customers in private chats (0: no Telegram)"
    )
    parser.add_argument(
        "--sms-customers",
        type=int,
        default=2,
        help="SMS customers, each with its own number, through the fake Twilio API (0: no Twilio)",
    )
    parser.add_argument(
        "--email-customers",
        type=int,
        default=2,
        help="email customers, each with its own address, mailing a real IMAP mailbox the gateway reads "
        "(Dovecot), answered through a real SMTP server (0: no email)",
    )
    parser.add_argument("--telegram-poll-timeout", type=int, default=2, help="getUpdates long-poll seconds")
    parser.add_argument(
        "--telegram-send-latency",
        type=float,
        default=0.0,
        help="seconds the fake's sendMessage answers after the message shows (a real Bot API call: ~0.05-0.3 s)",
    )
    parser.add_argument("--gateway-kills", type=int, default=10)
    parser.add_argument("--db-kills", type=int, default=3)
    parser.add_argument("--settle-seconds", type=float, default=60.0)
    parser.add_argument("--timeout-seconds", type=float, default=900.0, help="hard limit for the whole run")
    parser.add_argument("--max-messages", type=int, default=200, help="per customer")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's kill order and pauses")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the database and logs here")
    parser.add_argument(
        "--no-db-sync-on-commit",
        action="store_true",
        help="start the database without --sync-on-commit (as the product did before), to see what that loses",
    )
    parser.add_argument(
        "--gateway-env", type=_pair, action="append", default=[], help="NAME=VALUE setting for the gateway"
    )
    args = parser.parse_args(argv)
    return ChaosConfig(
        customers=args.customers,
        telegram_customers=args.telegram_customers,
        sms_customers=args.sms_customers,
        email_customers=args.email_customers,
        telegram_poll_timeout_seconds=args.telegram_poll_timeout,
        telegram_send_latency_seconds=args.telegram_send_latency,
        gateway_kills=args.gateway_kills,
        db_kills=args.db_kills,
        settle_seconds=args.settle_seconds,
        timeout_seconds=args.timeout_seconds,
        max_messages=args.max_messages,
        seed=args.seed,
        work_dir=args.work_dir,
        gateway_env=tuple(args.gateway_env),
        db_sync_on_commit=not args.no_db_sync_on_commit,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    result = asyncio.run(run(config))
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
