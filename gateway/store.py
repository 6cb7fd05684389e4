"""The conversation store: contacts, conversations, messages and outbox in MongoDB (PyMongo async).

Each public method is one database round trip unless its docstring says otherwise; the AI turn's
budget (see docs/benchmarks.md) is counted in these calls.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import (
    ASCENDING,
    DESCENDING,
    AsyncMongoClient,
    IndexModel,
    InsertOne,
    ReturnDocument,
    UpdateOne,
    WriteConcern,
)
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ClientBulkWriteException,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
)

from gateway.logs import log_event
from gateway.models import ConversationRef, Identity

log = logging.getLogger("gateway.store")

# Statuses in which the AI owns the next turn once a customer message arrives; a resolved
# conversation is reopened to the AI (a repeat contact).
_AI_AFTER = ("new", "resolved", "ai")


def utcnow() -> datetime:
    # MongoDB keeps milliseconds; truncating here makes stored and in-memory values compare equal.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class DuplicateMessage(Exception):
    """The idempotency key is already stored: a provider retry or a resent client message."""


def parse_id(value: str) -> ObjectId | None:
    return ObjectId(value) if ObjectId.is_valid(value) else None


INDEXES: dict[str, list[IndexModel]] = {
    "contacts": [
        # One contact per channel identity; a contact may hold several identities (multikey).
        IndexModel([("identity_keys", ASCENDING)], unique=True, name="identity_keys_unique"),
    ],
    "conversations": [
        # One conversation per customer thread: ingest resolves it by this key in one upsert.
        IndexModel([("ref_key", ASCENDING)], unique=True, name="ref_key_unique"),
        # Queue views and handoff metrics scan by status and recency.
        IndexModel([("status", ASCENDING), ("updated_at", DESCENDING)], name="status_updated"),
        IndexModel([("contact_id", ASCENDING)], name="contact"),
        # The estimated wait told to a customer on handoff: a queue's latest first human replies.
        IndexModel([("queue", ASCENDING), ("handoff_at", DESCENDING)], name="queue_handoff"),
        # An agent's reply in Slack finds its conversation by the card's thread.
        IndexModel([("slack.channel", ASCENDING), ("slack.thread_ts", ASCENDING)], name="slack_thread"),
        # The SLA watcher: handoffs still waiting past their due time.
        IndexModel([("status", ASCENDING), ("sla_due_at", ASCENDING)], name="status_sla_due"),
    ],
    "handoffs": [
        # One record per handoff: what handoff metrics are computed from, by time and by queue.
        IndexModel([("handoff_at", DESCENDING)], name="handoff_at"),
        IndexModel([("queue", ASCENDING), ("handoff_at", DESCENDING)], name="queue_handoff_at"),
        IndexModel([("conversation_id", ASCENDING), ("handoff_at", DESCENDING)], name="conversation"),
    ],
    "notes": [
        # Internal notes agents left in a thread; they never reach the customer.
        IndexModel([("conversation_id", ASCENDING), ("created_at", ASCENDING)], name="conversation_created"),
    ],
    "desk_events": [
        # Slack event ids already handled; a week is longer than Slack retries (three retries over ~1 hour).
        IndexModel([("received_at", ASCENDING)], expireAfterSeconds=7 * 86_400, name="received_ttl"),
    ],
    "messages": [
        # Ordered history and `after_seq` replay; unique so two writers can never share a number.
        IndexModel([("conversation_id", ASCENDING), ("seq", ASCENDING)], unique=True, name="conversation_seq"),
        # A provider retry or resent client message is a no-op.
        IndexModel([("idempotency_key", ASCENDING)], unique=True, name="idempotency_key_unique"),
        # The recovery sweep: customer messages whose AI turn has not finished. Sparse, because the
        # field exists only until the reply is written, so the index holds only turns in flight.
        IndexModel([("awaiting_reply_since", ASCENDING)], sparse=True, name="awaiting_reply"),
    ],
    "provider_ids": [
        # _id is "<channel>|<provider message id>" (unique by itself): provider id → our message, for
        # a customer's edit or reply-to. This index goes the other way, for an agent's edit or delete.
        IndexModel([("message_id", ASCENDING), ("part", ASCENDING)], name="message_part"),
    ],
    "outbox": [
        # The sweeper's query: due jobs.
        IndexModel([("state", ASCENDING), ("next_attempt_at", ASCENDING)], name="state_due"),
        # Head-of-line check: is an earlier job in this lane still pending?
        IndexModel([("lane", ASCENDING), ("position", ASCENDING)], name="lane_position"),
        # One job per outbound message, whoever enqueues it twice.
        IndexModel([("idempotency_key", ASCENDING)], unique=True, name="idempotency_key_unique"),
    ],
}


WRITE_CONFLICT = 112  # the server's WriteConflict code

# The fields a customer message carries while the AI owes it an answer (see Ingest.receive).
TURN_FIELDS = ("awaiting_reply_since", "turn_lease_until")


class _GuardFailed(Exception):
    """The ownership guard of a reply did not hold: abort the transaction, write nothing."""


class ConversationStore:
    def __init__(self, client: AsyncMongoClient, database: str) -> None:
        self.client = client
        # Journaled: what a customer is told about (their message echoed, a reply sent) must survive
        # the database being killed the moment after. The client's own w (majority, say) is kept.
        w = client.write_concern.document.get("w")
        self.write_concern = WriteConcern(w=w, j=True) if w is not None else WriteConcern(j=True)
        self.db: AsyncDatabase = client.get_database(database, write_concern=self.write_concern)
        self.contacts = self.db.contacts
        self.conversations = self.db.conversations
        self.messages = self.db.messages
        self.outbox = self.db.outbox
        self.handoffs = self.db.handoffs
        self.notes = self.db.notes
        self.desk_events = self.db.desk_events
        self.provider_ids = self.db.provider_ids
        self._cross_collection_bulk = True
        # Multi-document transactions need a replica set (or mongos); SecantusDB advertises one.
        self.transactions = False

    async def ensure_indexes(self) -> None:
        for name, models in INDEXES.items():
            await self.db[name].create_indexes(models)
        hello = await self.client.admin.command("hello")
        self.transactions = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
        if not self.transactions:
            log_event(log, "transactions_unavailable", logging.WARNING, hint="a standalone server; use a replica set")
        await self._end_orphaned_transactions()

    async def _end_orphaned_transactions(self) -> None:
        """SecantusDB never ends a transaction whose process died between its writes and its commit
        (a kill -9): it keeps holding the conversation, and every later write to it waits for good.
        MongoDB aborts such a transaction itself after transactionLifetimeLimitSeconds (60 s). So on
        SecantusDB a starting process, usually the one replacing a killed one, ends them all
        (killAllSessions); other processes' transactions in flight are run again by with_transaction."""
        build = await self.client.admin.command("buildInfo")
        if "secantusVersion" not in build:
            return
        await self.client.admin.command({"killAllSessions": []})
        log_event(log, "orphaned_transactions_ended", server="secantusdb")

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    # contacts

    async def resolve_contact(self, identity: Identity) -> ObjectId:
        now = utcnow()
        for _ in range(2):
            try:
                doc = await self.contacts.find_one_and_update(
                    {"identity_keys": identity.key},
                    {
                        "$setOnInsert": {
                            # Kept as an array so later issues can link more identities to one contact.
                            "identity_keys": [identity.key],
                            "created_at": now,
                            "name": identity.name,
                            "email": identity.email,
                            "identities": [{"channel": identity.channel, "address": identity.address}],
                        },
                        "$set": {"last_seen_at": now},
                    },
                    upsert=True,
                    projection={"_id": 1},
                    return_document=ReturnDocument.AFTER,
                )
                return doc["_id"]
            except DuplicateKeyError:
                continue  # a concurrent upsert won the race; the second pass finds its document
        raise RuntimeError(f"could not resolve contact {identity.key}")

    # conversations

    async def create_conversation(self, ref: ConversationRef, contact_id: ObjectId) -> dict[str, Any]:
        now = utcnow()
        doc = {
            "ref_key": ref.key,
            "ref": ref.to_doc(),
            "contact_id": contact_id,
            "status": "ai",
            "queue": None,
            "assignee": None,
            "seq": 0,
            "created_at": now,
            "updated_at": now,
            "last_customer_message_at": None,
            "handoff_at": None,
            "first_human_reply_at": None,
            "resolved_at": None,
            "reopened_at": None,
            "reopen_count": 0,
        }
        result = await self.conversations.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    async def get_conversation(self, conversation_id: ObjectId) -> dict[str, Any] | None:
        return await self.conversations.find_one({"_id": conversation_id})

    async def open_turn(self, ref: ConversationRef, sender_key: str, now: datetime) -> dict[str, Any]:
        """Resolve-or-create the conversation for `ref` and number the customer's message, atomically.

        When the AI owns the turn, two numbers are taken: the customer's and the AI reply's, so the
        reply needs no second round trip. A resolved conversation is reopened to the AI.
        """
        prior = {"$ifNull": ["$status", "new"]}
        ai_after = {"$in": [prior, list(_AI_AFTER)]}
        pipeline = [
            {
                "$set": {
                    "ref": {"$ifNull": ["$ref", {"$literal": ref.to_doc()}]},
                    "contact_key": {"$ifNull": ["$contact_key", sender_key]},
                    "created_at": {"$ifNull": ["$created_at", now]},
                    "queue": {"$ifNull": ["$queue", None]},
                    "assignee": {"$ifNull": ["$assignee", None]},
                    "prior_status": prior,
                    "status": {"$cond": [ai_after, "ai", prior]},
                    "seq": {"$add": [{"$ifNull": ["$seq", 0]}, {"$cond": [ai_after, 2, 1]}]},
                    "reopen_count": {
                        "$add": [
                            {"$ifNull": ["$reopen_count", 0]},
                            {"$cond": [{"$eq": [prior, "resolved"]}, 1, 0]},
                        ]
                    },
                    "reopened_at": {"$cond": [{"$eq": [prior, "resolved"]}, now, "$reopened_at"]},
                    "last_customer_message_at": now,
                    "updated_at": now,
                }
            }
        ]
        for _ in range(2):
            try:
                doc = await self.conversations.find_one_and_update(
                    {"ref_key": ref.key}, pipeline, upsert=True, return_document=ReturnDocument.AFTER
                )
                assert doc is not None
                return doc
            except DuplicateKeyError:
                continue  # two first messages raced on a new thread; the loser updates the winner's doc
        raise RuntimeError(f"could not open conversation {ref.key}")

    async def undo_reopen(self, conversation_id: ObjectId, reopened_at: datetime) -> None:
        """A retried message must not reopen a resolved conversation: put it back."""
        await self.conversations.update_one(
            {"_id": conversation_id, "reopened_at": reopened_at, "status": "ai"},
            {"$set": {"status": "resolved", "reopened_at": None}, "$inc": {"reopen_count": -1}},
        )

    async def set_contact(self, conversation_id: ObjectId, contact_id: ObjectId) -> None:
        await self.conversations.update_one({"_id": conversation_id}, {"$set": {"contact_id": contact_id}})

    async def allocate_seq(self, conversation_id: ObjectId, count: int = 1) -> int:
        """Number `count` new messages in a conversation (agent or system messages); returns the last."""
        doc = await self.conversations.find_one_and_update(
            {"_id": conversation_id},
            {"$inc": {"seq": count}, "$set": {"updated_at": utcnow()}},
            projection={"seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise LookupError(f"conversation {conversation_id} not found")
        return int(doc["seq"])

    async def recent_wait_minutes(self, queue: str, since: datetime, sample: int = 20) -> float | None:
        """Median minutes from handoff to first human reply over the queue's latest handoffs, or None."""
        cursor = self.conversations.find(
            {"queue": queue, "handoff_at": {"$gte": since}, "first_human_reply_at": {"$ne": None}},
            projection={"handoff_at": 1, "first_human_reply_at": 1},
        )
        rows = await cursor.sort("handoff_at", DESCENDING).limit(sample).to_list()
        waits = sorted(
            (r["first_human_reply_at"] - r["handoff_at"]).total_seconds() / 60
            for r in rows
            if r["first_human_reply_at"] >= r["handoff_at"]
        )
        if not waits:
            return None
        middle = len(waits) // 2
        return waits[middle] if len(waits) % 2 else (waits[middle - 1] + waits[middle]) / 2

    # messages

    async def insert_message(self, doc: dict[str, Any], jobs: Sequence[Mapping[str, Any]] = ()) -> None:
        """Insert a message, and with it the outbox jobs it causes (one ordered batch: a duplicate
        message stops the batch, so a provider's retry enqueues nothing)."""
        try:
            if not jobs:
                await self.messages.insert_one(doc)
            else:
                await self.insert_ordered([("messages", doc), *(("outbox", job) for job in jobs)])
        except (DuplicateKeyError, ClientBulkWriteException) as exc:
            if "idempotency_key" in str(exc) and _first_write_failed(exc):
                raise DuplicateMessage(doc["idempotency_key"]) from None
            raise

    async def insert_ordered(self, docs: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Insert documents into several collections, all or none: in a transaction where the server
        has them (MongoDB 8's bulkWrite inside it: two round trips), else in order, where the first
        failure stops the rest."""
        await self._write([("insert", name, dict(doc), None) for name, doc in docs])

    async def _write(self, ops: Sequence[tuple[str, str, dict[str, Any], dict[str, Any] | None]]) -> None:
        """Apply `ops` — ("insert", collection, document, None) or ("guard" | "update", collection,
        filter, update) — in order, atomically where transactions exist.

        A "guard" is an ownership check: an upsert on a filter that includes `_id`, which collides on
        `_id` when the filter no longer matches, so the ordered batch stops at its first step (and a
        transaction writes nothing). Raises _GuardFailed in that case.
        """
        if not self.transactions:
            await self._apply(ops, None)
            return
        # Not causally consistent: a retried transaction would carry readConcern.afterClusterTime on its
        # bulkWrite, a field SecantusDB refuses there (IDLUnknownField); each reply reads nothing anyway.
        async with self.client.start_session(causal_consistency=False) as session:

            async def body(session: AsyncClientSession) -> None:
                await self._apply(ops, session)

            await session.with_transaction(body, write_concern=self.write_concern)

    async def _apply(
        self, ops: Sequence[tuple[str, str, dict[str, Any], dict[str, Any] | None]], session: AsyncClientSession | None
    ) -> None:
        if self._cross_collection_bulk:
            models = [
                InsertOne(doc, namespace=self.db[name].full_name)
                if kind == "insert"
                else UpdateOne(doc, update, upsert=kind == "guard", namespace=self.db[name].full_name)
                for kind, name, doc, update in ops
            ]
            try:
                await self.client.bulk_write(
                    models, ordered=True, session=session, write_concern=None if session else self.write_concern
                )
                return
            except ClientBulkWriteException as exc:
                errors = exc.write_errors or []
                first = errors[0] if errors else {}
                if ops and ops[0][0] == "guard" and first.get("idx") == 0 and first.get("code") == 11000:
                    raise _GuardFailed from None
                if session is not None:
                    _raise_transient(exc)
                raise
            except (OperationFailure, InvalidOperation) as exc:
                # The driver refuses before 8.0 (InvalidOperation); a server may answer code 59,
                # CommandNotFound. Anything else is a real error.
                if isinstance(exc, OperationFailure) and exc.code != 59:
                    raise
                self._cross_collection_bulk = False
                log_event(log, "bulk_write_unsupported_fallback")
        for kind, name, doc, update in ops:
            if kind == "insert":
                await self.db[name].insert_one(doc, session=session)
                continue
            assert update is not None
            result = await self.db[name].update_one(doc, update, session=session)
            if kind == "guard" and result.matched_count == 0:
                raise _GuardFailed

    # provider message ids (one place for every channel's ids: Telegram's, Twilio's SIDs, Message-IDs)

    async def map_provider_id(
        self, channel: str, provider_message_id: str, *, message_id: Any, conversation_id: Any, part: int = 0
    ) -> None:
        """Remember which of our messages a provider's id names (written once; a repeat is a no-op)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.provider_ids.insert_one(
                {
                    "_id": f"{channel}|{provider_message_id}",
                    "channel": channel,
                    "provider_message_id": provider_message_id,
                    "message_id": message_id,
                    "conversation_id": conversation_id,
                    "part": part,
                    "created_at": utcnow(),
                }
            )

    async def message_for_provider_id(self, channel: str, provider_message_id: str) -> dict[str, Any] | None:
        mapped = await self.provider_ids.find_one({"_id": f"{channel}|{provider_message_id}"})
        return await self.messages.find_one({"_id": mapped["message_id"]}) if mapped else None

    async def provider_ids_of(self, message_id: Any) -> list[str]:
        """The provider's ids of one of our messages, one per part, in order."""
        found = self.provider_ids.find({"message_id": message_id}, {"provider_message_id": 1, "part": 1})
        return [d["provider_message_id"] for d in await found.sort("part", ASCENDING).to_list()]

    async def message_by_key(self, idempotency_key: str) -> dict[str, Any] | None:
        return await self.messages.find_one({"idempotency_key": idempotency_key})

    async def messages_after(self, conversation_id: ObjectId, after_seq: int, limit: int = 500) -> list[dict]:
        cursor = self.messages.find({"conversation_id": conversation_id, "seq": {"$gt": after_seq}})
        return await cursor.sort("seq", ASCENDING).limit(limit).to_list()

    async def recent_messages(self, conversation_id: ObjectId, limit: int = 20) -> list[dict]:
        cursor = self.messages.find({"conversation_id": conversation_id}).sort("seq", DESCENDING).limit(limit)
        return list(reversed(await cursor.to_list()))

    async def store_outbound(
        self,
        message: Mapping[str, Any],
        jobs: Sequence[Mapping[str, Any]],
        *,
        owner_status: str,
        touch: Mapping[str, Any],
        extra: Sequence[tuple[str, Mapping[str, Any]]] = (),
        answers: Any = None,
    ) -> bool:
        """Store an outbound message and its outbox jobs if the conversation is still `owner_status`.

        With MongoDB 8's cross-collection bulkWrite this is one ordered round trip whose first step is
        the ownership guard: an upsert on {_id, status}. When the status has changed (say an agent
        claimed the conversation while the AI was thinking) the upsert collides on `_id`, the ordered
        batch stops, and neither the message nor the job is written. Returns False in that case.
        Servers without bulkWrite get the same guard as a separate update, then two inserts.

        `answers`: the customer message this replies to. The guard then also requires that it was not
        answered already, so a second turn for the same message (a restart's resume racing the first)
        changes nothing at all, rather than touching the conversation and failing on the message.
        """
        guard: dict[str, Any] = {"_id": message["conversation_id"], "status": owner_status}
        if answers is not None:
            guard["answered_message_id"] = {"$ne": answers}
            touch = {**touch, "answered_message_id": answers}
        ops: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
            ("guard", "conversations", guard, {"$set": dict(touch)}),
            ("insert", "messages", dict(message), None),
            *(("insert", "outbox", dict(job), None) for job in jobs),
            *(("insert", name, dict(doc), None) for name, doc in extra),
        ]
        if answers is not None:
            # The customer's message is answered: the recovery sweep stops looking at it.
            ops.append(("update", "messages", {"_id": answers}, {"$unset": dict.fromkeys(TURN_FIELDS, "")}))
        try:
            await self._write(ops)
        except _GuardFailed:
            return False
        return True

    # AI turns in flight (recovery: gateway/recovery.py)

    async def claim_turn(self, message_id: Any, now: datetime, lease_seconds: float) -> bool:
        """Take the AI turn of a customer message whose hold lapsed (its process died, or it failed).
        One update by `_id`: of several processes sweeping, exactly one wins."""
        result = await self.messages.update_one(
            {"_id": message_id, "awaiting_reply_since": {"$ne": None}, "turn_lease_until": {"$lt": now}},
            {"$set": {"turn_lease_until": now + timedelta(seconds=lease_seconds)}, "$inc": {"turn_attempts": 1}},
        )
        return result.modified_count == 1

    async def renew_turn(self, message_id: Any, until: datetime) -> None:
        await self.messages.update_one(
            {"_id": message_id, "awaiting_reply_since": {"$ne": None}}, {"$set": {"turn_lease_until": until}}
        )

    async def settle_turn(self, message_id: Any) -> None:
        """The AI owes this message nothing more (a person took over, or it was answered already)."""
        await self.messages.update_one({"_id": message_id}, {"$unset": dict.fromkeys(TURN_FIELDS, "")})

    async def lapsed_turns(self, now: datetime, limit: int = 50) -> list[dict[str, Any]]:
        """Customer messages still owed an answer whose hold has lapsed, oldest first (served by the
        sparse `awaiting_reply` index: only turns in flight are in it)."""
        cursor = self.messages.find({"awaiting_reply_since": {"$lte": now}, "turn_lease_until": {"$lt": now}}).sort(
            "awaiting_reply_since", ASCENDING
        )
        return await cursor.limit(limit).to_list()

    async def repair_seq(self, conversation_id: Any) -> int:
        """Bring the conversation's counter up to its highest stored message, should it ever lag
        (a database that lost its last writes): a number must never be given to two messages."""
        top = await self.messages.find_one(
            {"conversation_id": conversation_id}, projection={"seq": 1}, sort=[("seq", DESCENDING)]
        )
        highest = int(top["seq"]) if top else 0
        result = await self.conversations.update_one({"_id": conversation_id}, {"$max": {"seq": highest}})
        if result.modified_count:
            log_event(log, "seq_counter_repaired", logging.WARNING, conversation_id=str(conversation_id), seq=highest)
        return highest


def _raise_transient(exc: ClientBulkWriteException) -> None:
    """A write conflict inside a transaction (another write touched the same conversation, say the
    customer's next message being numbered) must reach with_transaction as what it is, so that it
    runs the transaction again: the driver wraps it in a ClientBulkWriteException that carries no
    TransientTransactionError label of its own."""
    cause = exc.error
    if isinstance(cause, PyMongoError) and cause.has_error_label("TransientTransactionError"):
        raise cause from exc
    if any(e.get("code") == WRITE_CONFLICT for e in exc.write_errors or []):
        raise OperationFailure(
            "WriteConflict in a transaction", WRITE_CONFLICT, {"errorLabels": ["TransientTransactionError"]}
        ) from exc


def _first_write_failed(exc: Exception) -> bool:
    """For a bulk write, whether its first operation (the message insert) is the one that failed."""
    if isinstance(exc, ClientBulkWriteException):
        errors = exc.write_errors or []
        return bool(errors) and errors[0].get("idx") == 0
    return True
