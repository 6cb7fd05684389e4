"""Plays the agent side (Slack) of an edit or deletion for web chat tests, following its contract.

The core updates the stored message first, then enqueues an outbox job carrying
`extra={"op", "target_seq", "target_provider_message_ids"}`; jobs go through the real outbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from gateway.ingest import message_document
from gateway.models import Attachment, ConversationRef, OutboundMessage
from gateway.store import utcnow
from tests.conftest import RunningGateway
from tests.helpers import eventually

LABEL = Attachment("label-10423.pdf", "application/pdf", url="https://files.example.com/label-10423.pdf")


@dataclass
class Sent:
    """An agent message as stored and delivered, and what the Slack side would keep of it."""

    conversation_id: ObjectId
    ref: ConversationRef
    seq: int
    provider_message_id: str


async def deliver(gw: RunningGateway, ref: ConversationRef, outbound: OutboundMessage) -> dict[str, Any]:
    """Enqueue and deliver a job as production does; returns the job once it is marked sent."""
    job = gw.runtime.outbox.new_job(ref, outbound, idempotency_key=f"test:{uuid.uuid4().hex}")
    await gw.runtime.store.outbox.insert_one(job)
    gw.runtime.outbox.dispatch(job)

    async def sent() -> bool:
        return (await gw.runtime.store.outbox.find_one({"_id": job["_id"]}))["state"] == "sent"

    await eventually(sent)
    return await gw.runtime.store.outbox.find_one({"_id": job["_id"]})


async def send_agent_message(gw: RunningGateway, conversation_id: str, text: str) -> Sent:
    store = gw.runtime.store
    oid = ObjectId(conversation_id)
    ref = ConversationRef.from_doc((await store.get_conversation(oid))["ref"])
    seq = await store.allocate_seq(oid)
    now = utcnow()
    doc = message_document(
        conversation_id=oid,
        seq=seq,
        author="agent",
        text=text,
        idempotency_key=f"agent:{uuid.uuid4().hex}",
        created_at=now,
        channel="slack",
        attachments=[LABEL.to_doc()],
    )
    doc["agent_name"] = "Dana"
    await store.insert_message(doc)
    outbound = OutboundMessage(
        conversation_id=conversation_id,
        seq=seq,
        author="agent",
        text=text,
        created_at=now,
        attachments=(LABEL,),
        agent_name="Dana",
        message_id=str(doc["_id"]),
    )
    job = await deliver(gw, ref, outbound)
    return Sent(oid, ref, seq, job["provider_message_id"])


async def revise(gw: RunningGateway, sent: Sent, op: str, text: str = "") -> dict[str, Any]:
    """The core's half of an agent's edit/delete: update the stored message, then send the op."""
    store = gw.runtime.store
    now = utcnow()
    change = {"text": text, "edited_at": now} if op == "edit" else {"text": "", "deleted_at": now}
    target = await store.messages.find_one_and_update(
        {"conversation_id": sent.conversation_id, "seq": sent.seq}, {"$set": change}
    )
    outbound = OutboundMessage(
        conversation_id=str(sent.conversation_id),
        seq=await store.allocate_seq(sent.conversation_id),
        author="agent",
        text=text,
        created_at=now,
        agent_name="Dana",
        message_id=str(target["_id"]),
        extra={"op": op, "target_seq": sent.seq, "target_provider_message_ids": [sent.provider_message_id]},
    )
    return await deliver(gw, sent.ref, outbound)
