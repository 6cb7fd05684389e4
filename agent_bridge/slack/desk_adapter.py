"""The Slack desk: delivers desk jobs (gateway/desk.py) as Slack calls. The outbox calls `send`.

Each job re-reads the conversation, so a card always shows the current state, whichever process
runs it and however late. Every call is made so that a retry after a partial failure repeats as
little as possible: the thread is remembered right after the card is posted, `slack.last_seq` after
the transcript, and each mirrored customer message's `slack_mirror` right after its post.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from agent_bridge.ai.rules import RoutingRules
from agent_bridge.slack.card import CardState, blocks_json, handoff_card
from agent_bridge.slack.errors import CHANNEL_PROBLEMS, delivery_error, slack_error_code
from agent_bridge.slack.escaping import escape_mrkdwn, quote_customer_text, truncate
from agent_bridge.slack.mirror import MirrorPost, mirror_posts, mirror_state
from agent_bridge.slack.transcript import transcript_posts
from gateway.channel import Capabilities
from gateway.files import FileFetchError, FilePolicy, FileRejected, FileStore, check_file
from gateway.logs import log_event
from gateway.models import Attachment, ConversationRef, DeliveryError, OutboundMessage, SendResult
from gateway.store import ConversationStore, utcnow

log = logging.getLogger("agent_bridge.slack.desk")

DESK = "slack"
CARD_STATES: dict[str, CardState] = {
    "waiting_for_agent": "waiting",
    "with_agent": "claimed",
    "resolved": "resolved",
    "ai": "returned",
}
DELIVERED_REACTION = "white_check_mark"
FAILED_REACTION = "warning"
NOTE_REACTION = "lock"
# Links in our own thread posts must not unfold into previews of customer-sent URLs.
NO_UNFURL = {"unfurl_links": False, "unfurl_media": False}
# Messages one mirror job reads; what is left over is taken by the jobs after it.
MIRROR_SCAN = 500
# Messages a handoff's transcript reads (a longer one goes to the thread as a file anyway).
TRANSCRIPT_SCAN = 2000


class SlackDesk:
    name = DESK
    label = "Slack"
    capabilities = Capabilities(max_text=40_000, attachments=True)

    def __init__(
        self,
        client: AsyncWebClient,
        store: ConversationStore,
        rules: RoutingRules,
        files: FileStore | None,
        policy: FilePolicy,
        *,
        default_channel: str = "",
        mirror_max_posts: int = 10,
        channel_label: Callable[[str], str] = str,
    ) -> None:
        self.client = client
        # The customer channel's name as people read it ("Telegram"), from its adapter.
        self.channel_label = channel_label
        self.store = store
        self.rules = rules
        self.files = files
        self.policy = policy
        self.default_channel = default_channel
        self.mirror_max_posts = mirror_max_posts

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult:
        kind = message.extra.get("kind")
        conversation = await self.store.get_conversation(ObjectId(message.conversation_id))
        if conversation is None:
            raise DeliveryError(f"conversation {message.conversation_id} is gone", permanent=True)
        try:
            if kind == "handoff":
                return await self._handoff(conversation, message)
            if kind == "customer_message":
                return await self._mirror(conversation, message)
            if kind == "card":
                return await self._refresh_card(conversation)
            if kind == "event":
                return await self._event(conversation, message)
            if kind == "receipt":
                return await self._receipt(conversation, message)
        except SlackApiError as exc:
            raise delivery_error(exc, str(kind)) from exc
        raise DeliveryError(f"unknown desk job kind {kind!r}", permanent=True)

    # the card

    def _queue_channel(self, conversation: Mapping[str, Any]) -> str:
        queue = self.rules.queue(conversation.get("queue"))
        channel = queue.slack_channel or self.default_channel
        if not channel:
            raise DeliveryError(
                f"queue {queue.name!r} has no slack_channel in the routing file and SLACK_DEFAULT_CHANNEL is not set",
                permanent=True,
            )
        return channel

    async def _customer_name(self, conversation: Mapping[str, Any]) -> str:
        contact = await self.store.contacts.find_one({"_id": conversation.get("contact_id")}, projection={"name": 1})
        return str((contact or {}).get("name") or "") or "Customer"

    async def _card(self, conversation: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        channel = conversation["ref"]["channel"]
        handoff = conversation.get("handoff") or {}
        turn = None
        if handoff.get("message_id") is not None:
            ai_message = await self.store.messages.find_one({"_id": handoff["message_id"]}, projection={"meta": 1})
            turn = (ai_message or {}).get("meta")
        queue = self.rules.queue(conversation.get("queue"))
        state = CARD_STATES.get(conversation["status"], "waiting")
        who = {
            "claimed": conversation.get("assignee"),
            "resolved": conversation.get("resolved_by"),
            "returned": conversation.get("returned_by"),
        }.get(state) or {}
        now = utcnow()
        text, blocks = handoff_card(
            conversation,
            customer_name=await self._customer_name(conversation),
            channel_label=self.channel_label(channel),
            turn_record=turn,
            queue=queue,
            sla_due=conversation.get("sla_due_at") or queue.sla_due(conversation.get("handoff_at") or now),
            now=now,
            state=state,
            assignee=(who.get("id") if who.get("desk") == DESK else who.get("name")) or None,
        )
        return text, blocks_json(blocks)

    async def _handoff(self, conversation: dict[str, Any], message: OutboundMessage) -> SendResult:
        wanted = self._queue_channel(conversation)
        slack = conversation.get("slack") or {}
        handoff_seq = int(message.extra.get("handoff_seq") or message.seq)
        handoff_id = message.extra.get("handoff_id")
        if not slack.get("thread_ts") or slack.get("channel_name") != wanted:
            text, blocks = await self._card(conversation)
            posted, channel_name = await self._post_card(wanted, text, blocks)
            slack = await self._remember(
                conversation,
                {
                    "slack": {
                        "channel": posted["channel"],
                        "channel_name": channel_name,
                        "thread_ts": posted["ts"],
                        "card_ts": posted["ts"],
                        "handoff_id": handoff_id,
                        "last_seq": 0,
                    }
                },
            )
        elif slack.get("handoff_id") != handoff_id:
            # Handed off again in the same queue: one thread per conversation, the card brought up to date.
            await self._refresh_card(conversation)
            await self.client.chat_postMessage(
                channel=slack["channel"],
                thread_ts=slack["thread_ts"],
                text=":arrow_right_hook: Handed to people again. "
                + quote_customer_text((conversation.get("handoff") or {}).get("reason") or "", 500),
                reply_broadcast=True,
                **NO_UNFURL,
            )
            slack = await self._remember(conversation, {"slack.handoff_id": handoff_id})
        # Otherwise this is a retry after the card went out: only the transcript may be missing.
        if int(slack.get("last_seq") or 0) < handoff_seq:
            await self._transcript(conversation, slack, handoff_seq)
        return SendResult(provider_message_id=str(slack.get("card_ts") or ""))

    async def _post_card(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> tuple[Any, str]:
        try:
            return await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks, **NO_UNFURL), channel
        except SlackApiError as exc:
            fallback = self.default_channel
            if slack_error_code(exc) not in CHANNEL_PROBLEMS or not fallback or fallback == channel:
                raise
            # A misconfigured queue channel must not lose the handoff: the default channel gets it.
            log_event(log, "slack_queue_channel_failed", logging.ERROR, channel=channel, error=slack_error_code(exc))
            posted = await self.client.chat_postMessage(channel=fallback, text=text, blocks=blocks, **NO_UNFURL)
            return posted, channel

    async def _remember(self, conversation: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
        updated = await self.store.conversations.find_one_and_update(
            {"_id": conversation["_id"]},
            {"$set": dict(fields)},
            projection={"slack": 1},
            return_document=ReturnDocument.AFTER,
        )
        conversation["slack"] = (updated or {}).get("slack") or {}
        return conversation["slack"]

    async def _transcript(self, conversation: dict[str, Any], slack: Mapping[str, Any], until_seq: int) -> None:
        after = int(slack.get("last_seq") or 0)
        query: dict[str, Any] = {
            "conversation_id": conversation["_id"],
            "seq": {"$gt": after, "$lte": until_seq},
            # Customer messages mirrored live during an earlier handoff are in the thread already.
            "slack_mirror.text": {"$ne": True},
        }
        if after:
            # A second handoff: the agent replies are already in the thread, as the agents wrote them.
            query["author"] = {"$in": ["customer", "ai"]}
        messages = await self.store.messages.find(query, sort=[("seq", ASCENDING)], limit=TRANSCRIPT_SCAN).to_list()
        if messages:
            names = {"customer": await self._customer_name(conversation)}
            plan = transcript_posts(messages, names=names, conversation_id=str(conversation["_id"]))
            for post in plan.posts:
                await self.client.chat_postMessage(
                    channel=slack["channel"], thread_ts=slack["thread_ts"], text=post, **NO_UNFURL
                )
            if plan.file is not None:
                await self.client.files_upload_v2(
                    channel=slack["channel"],
                    thread_ts=slack["thread_ts"],
                    filename=plan.file.filename,
                    title=plan.file.title,
                    content=plan.file.content,
                )
        await self._remember(conversation, {"slack.last_seq": until_seq})

    async def _refresh_card(self, conversation: dict[str, Any]) -> SendResult:
        slack = conversation.get("slack") or {}
        if not slack.get("card_ts"):
            return SendResult()  # no card was ever posted (Slack was not set up then): nothing to update
        text, blocks = await self._card(conversation)
        await self.client.chat_update(channel=slack["channel"], ts=slack["card_ts"], text=text, blocks=blocks)
        return SendResult(provider_message_id=slack["card_ts"])

    # the thread

    def _thread(self, conversation: Mapping[str, Any]) -> Mapping[str, Any]:
        slack = conversation.get("slack") or {}
        if not slack.get("thread_ts"):
            # The card job precedes this one in the lane; it failed or has not run.
            raise DeliveryError("the handoff card is not in Slack yet")
        return slack

    async def _mirror(self, conversation: dict[str, Any], job: OutboundMessage) -> SendResult:
        """Everything the customer said that is not in the thread yet, this job's message included,
        coalesced (`mirror.py`); a job whose message an earlier job took along makes no Slack call."""
        slack = self._thread(conversation)
        own = await self.store.messages.find_one({"_id": ObjectId(job.extra["message_id"])})
        if own is None:
            raise DeliveryError("mirrored message is gone", permanent=True)
        if mirror_state(own).get("files"):
            return SendResult()
        pending = await self._unmirrored(conversation, slack, own)
        by_id = {m["_id"]: m for m in pending}
        name = truncate(escape_mrkdwn(" ".join((await self._customer_name(conversation)).split())), 80)
        first_ts, posted, own_done = "", 0, False
        for post in mirror_posts(pending, name):
            if post.text:
                if own_done and posted >= self.mirror_max_posts:
                    break  # the rest is the next jobs' share; a job stays short of its outbox lease
                result = await self.client.chat_postMessage(
                    channel=slack["channel"], thread_ts=slack["thread_ts"], text=post.text, **NO_UNFURL
                )
                first_ts, posted = first_ts or str(result["ts"]), posted + 1
            await self._posted(post, by_id)
            for message_id in post.done:
                await self._upload(conversation, slack, by_id[message_id].get("attachments") or [])
                await self.store.messages.update_one({"_id": message_id}, {"$set": {"slack_mirror.files": True}})
            own_done = own_done or own["_id"] in post.done
        return SendResult(provider_message_id=first_ts)

    async def _unmirrored(
        self, conversation: Mapping[str, Any], slack: Mapping[str, Any], own: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Customer messages not (wholly) in the thread, oldest first, from the transcript's end up to
        the next AI or system message after this job's own: that one means the handoff ended (returned
        to AI, resolved), and what the customer said after it is not the agents' to see live."""
        last_seq = int(slack.get("last_seq") or 0)
        cursor = self.store.messages.find(
            {
                "conversation_id": conversation["_id"],
                "seq": {"$gt": min(last_seq, int(own["seq"]) - 1)},
                "$or": [
                    {"author": "customer", "slack_mirror.files": {"$ne": True}},
                    {"author": {"$in": ["ai", "system"]}, "seq": {"$gt": own["seq"]}},
                ],
            },
            sort=[("seq", ASCENDING)],
            limit=MIRROR_SCAN,
        )
        pending: list[dict[str, Any]] = []
        async for message in cursor:
            if message["author"] != "customer":
                break
            if message["seq"] <= last_seq and "slack_mirror" not in message:
                # Mirrored before messages carried `slack_mirror`, when `last_seq` alone said so:
                # the text is in the thread, its files may not be.
                message["slack_mirror"] = {"text": True}
            pending.append(message)
        if not any(m["_id"] == own["_id"] for m in pending):
            pending.append(dict(own))  # more unmirrored messages before it than one scan reads
        return pending

    async def _posted(self, post: MirrorPost, by_id: Mapping[Any, Mapping[str, Any]]) -> None:
        """Remember right after a post what it carried, so a retry never posts a text twice."""
        with_files = [i for i in post.done if by_id[i].get("attachments")]
        without = [i for i in post.done if not by_id[i].get("attachments")]
        if without:
            await self.store.messages.update_many(
                {"_id": {"$in": without}}, {"$set": {"slack_mirror.text": True, "slack_mirror.files": True}}
            )
        if with_files:
            await self.store.messages.update_many({"_id": {"$in": with_files}}, {"$set": {"slack_mirror.text": True}})
        if post.partial is not None:
            message_id, parts = post.partial
            await self.store.messages.update_one({"_id": message_id}, {"$set": {"slack_mirror.parts": parts}})

    async def _upload(
        self, conversation: Mapping[str, Any], slack: Mapping[str, Any], attachments: Sequence[dict]
    ) -> None:
        for doc in attachments:
            attachment = Attachment(**doc)
            try:
                if self.files is None:
                    raise FileRejected("the gateway has no file store")
                data = await self.files.read_attachment(attachment, max_bytes=self.policy.max_bytes)
                check_file(attachment.name, attachment.content_type, data, self.policy)
            except FileFetchError as exc:
                if not exc.permanent:
                    raise DeliveryError(exc.reason) from exc  # retried: the text is already in the thread
                reason = exc.reason
            except FileRejected as exc:
                reason = exc.reason
            else:
                reason = ""
            if reason:
                log_event(log, "slack_file_refused", logging.WARNING, conversation_id=str(conversation["_id"]))
                await self.client.chat_postMessage(
                    channel=slack["channel"],
                    thread_ts=slack["thread_ts"],
                    text=":no_entry_sign: A file from the customer was not posted here: "
                    + quote_customer_text(reason, 500),
                    **NO_UNFURL,
                )
                continue
            await self.client.files_upload_v2(
                channel=slack["channel"],
                thread_ts=slack["thread_ts"],
                filename=attachment.name or "file",
                title=attachment.name or "file",
                content=data,
            )

    async def _event(self, conversation: dict[str, Any], job: OutboundMessage) -> SendResult:
        slack = self._thread(conversation)
        event = job.extra.get("event")
        queue = self.rules.queue(conversation.get("queue"))
        if event == "sla_overdue":
            group = f"<!subteam^{queue.slack_user_group}> " if queue.slack_user_group.startswith("S") else ""
            text = (
                f":alarm_clock: {group}No one has replied within the {escape_mrkdwn(queue.display_name)} "
                f"SLA of {queue.sla_minutes} minutes. Can someone take this? The customer was told we're on it."
            )
        elif event == "csat":
            score = int(job.extra.get("score") or 0)
            text = f":star: The customer rated this conversation {score} out of 5."
        elif event == "file_refused":
            text = ":no_entry_sign: Not sent to the customer: " + quote_customer_text(str(job.extra.get("reason")), 500)
        elif event == "unreachable":
            text = ":no_mobile_phones: The customer can no longer be reached on this channel: " + quote_customer_text(
                str(job.extra.get("reason")), 500
            )
        elif event == "delivery_failed":
            text = ":warning: A message did not reach the customer: " + quote_customer_text(
                str(job.extra.get("reason")), 500
            )
        elif event == "channel_notice":
            text = ":information_source: " + quote_customer_text(str(job.extra.get("text")), 1000)
        elif event == "customer_edited":
            text = ":pencil2: The customer edited a message. It now reads: " + quote_customer_text(
                str(job.extra.get("text") or ""), 2000
            )
        elif event == "note_kept":
            # A lock on the note: the agent sees at a glance that it stayed inside Slack.
            await self._react(str(job.extra.get("channel")), str(job.extra.get("ts")), NOTE_REACTION)
            return SendResult()
        else:
            raise DeliveryError(f"unknown desk event {event!r}", permanent=True)
        posted = await self.client.chat_postMessage(
            channel=slack["channel"], thread_ts=slack["thread_ts"], text=text, **NO_UNFURL
        )
        return SendResult(provider_message_id=posted["ts"])

    async def _receipt(self, conversation: dict[str, Any], job: OutboundMessage) -> SendResult:
        ref = job.extra.get("desk_ref") or {}
        channel, ts = ref.get("channel"), ref.get("ts")
        if not channel or not ts:
            return SendResult()
        if job.extra.get("ok"):
            await self._react(channel, ts, DELIVERED_REACTION)
            return SendResult()
        reason = str(job.extra.get("reason") or "unknown reason")
        posted = await self.client.chat_postMessage(
            channel=channel,
            thread_ts=ref.get("thread_ts") or ts,
            text=f":warning: This reply did not reach the customer: {quote_customer_text(reason, 1000)}",
            **NO_UNFURL,
        )
        await self._react(channel, ts, FAILED_REACTION)
        return SendResult(provider_message_id=posted["ts"])

    async def _react(self, channel: str, ts: str, name: str) -> None:
        try:
            await self.client.reactions_add(channel=channel, timestamp=ts, name=name)
        except SlackApiError as exc:
            if slack_error_code(exc) != "already_reacted":  # a retried receipt: the reaction is there
                raise
