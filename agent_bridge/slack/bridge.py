"""The Slack app inside the gateway: a slack-bolt AsyncApp at POST /slack/events (events,
interactivity and slash commands share the one request URL), or over Socket Mode.

Every request's signature is checked (`signing.py`: X-Slack-Signature over the raw body and a
timestamp no older than five minutes; anything else is 401, logged without the body) before Bolt,
which checks it again, answers url_verification, and drops the app's own messages. Listeners run
before the response (`process_before_response`), so a failure answers 500 and Slack
retries it; the event ledger makes sure a retry of a handled event does nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from agent_bridge.ai.rules import RoutingRules
from agent_bridge.slack.agent_text import is_note, slack_to_plain
from agent_bridge.slack.card import ACTION_CLAIM, ACTION_RESOLVE, ACTION_RETURN
from agent_bridge.slack.desk_adapter import DESK, SlackDesk
from agent_bridge.slack.file_hosts import SlackFileHosts
from agent_bridge.slack.ledger import EventLedger
from agent_bridge.slack.people import AgentDirectory
from agent_bridge.slack.queue_status import queue_status
from agent_bridge.slack.signing import DropRefusedBodies, refusal
from gateway.desk import DeskJobs, present
from gateway.files import FileFetchError, FilePolicy, FileRejected, FileStore
from gateway.handoffs import ActionResult, Handoffs
from gateway.logs import log_event
from gateway.models import Attachment
from gateway.outbox import OutboxWorker
from gateway.settings import Settings
from gateway.store import ConversationStore, parse_id

log = logging.getLogger("agent_bridge.slack")

EVENTS_PATH = "/slack/events"
# Subtypes that carry an agent's own words; joins, topic changes and the like are not replies.
_REPLY_SUBTYPES = (None, "file_share", "thread_broadcast")


class SlackBridge:
    def __init__(self, settings: Settings) -> None:
        assert settings.slack_bot_token is not None
        self.settings = settings
        self.token = settings.slack_bot_token.get_secret_value()
        self.client = AsyncWebClient(token=self.token, base_url=str(settings.slack_api_url))
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        self.signing_secret = secret
        self.http_enabled = secret is not None
        bolt_log = logging.getLogger("agent_bridge.slack.bolt")
        if not any(isinstance(f, DropRefusedBodies) for f in bolt_log.filters):
            bolt_log.addFilter(DropRefusedBodies())
        self.app = AsyncApp(
            client=self.client,
            signing_secret=secret,
            # Checked in `_http` first; Bolt checks again, a second lock that costs one HMAC.
            # Socket Mode alone has no HTTP endpoint to verify (and none is mounted).
            request_verification_enabled=secret is not None,
            process_before_response=True,
            logger=bolt_log,
        )
        self.directory = AgentDirectory(self.client, settings.agent_name_style)
        self.file_hosts = SlackFileHosts(str(settings.slack_api_url))
        self.policy = FilePolicy.from_settings(settings)
        self.store: ConversationStore | None = None
        self.handoffs: Handoffs | None = None
        self.desk_jobs: DeskJobs | None = None
        self.outbox: OutboxWorker | None = None
        self.files: FileStore | None = None
        self.ledger: EventLedger | None = None
        self.rules: RoutingRules | None = None
        self._socket: Any = None
        self.app.event("message")(self._on_message)
        for action_id, method in (
            (ACTION_CLAIM, "claim"),
            (ACTION_RESOLVE, "resolve"),
            (ACTION_RETURN, "return_to_ai"),
        ):
            self.app.action(action_id)(self._button(method))
        self.app.command("/support")(self._on_support_command)

    # lifecycle

    def add_routes(self, app: web.Application) -> None:
        if self.http_enabled:
            app.router.add_post(EVENTS_PATH, self._http)

    def attach(
        self,
        *,
        store: ConversationStore,
        handoffs: Handoffs,
        outbox: OutboxWorker,
        rules: RoutingRules,
        files: FileStore | None,
        channel_label: Callable[[str], str] = str,
    ) -> SlackDesk:
        self.store, self.handoffs, self.outbox, self.rules, self.files = store, handoffs, outbox, rules, files
        self.desk_jobs = handoffs.desk
        self.ledger = EventLedger(store.desk_events)
        return SlackDesk(
            self.client,
            store,
            rules,
            files,
            self.policy,
            default_channel=self.settings.slack_default_channel,
            mirror_max_posts=self.settings.slack_mirror_max_posts,
            channel_label=channel_label,
        )

    async def start(self) -> None:
        if self.settings.slack_app_token is None:
            return
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        self._socket = AsyncSocketModeHandler(
            self.app, self.settings.slack_app_token.get_secret_value(), web_client=self.client
        )
        await self._socket.connect_async()
        log_event(log, "slack_socket_mode_connected")

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()

    async def _http(self, request: web.Request) -> web.Response:
        assert self.signing_secret is not None
        body = await request.read()
        reason = refusal(request.headers, body, self.signing_secret, time.time())
        if reason is None:
            try:
                text = body.decode("utf-8")  # Slack sends UTF-8 JSON or form data
            except UnicodeDecodeError:
                reason = "body_not_utf8"
        if reason is not None:
            # A forged, unsigned, malformed or replayed request: refused before Bolt sees it, and never
            # logged with its body or headers.
            log_event(log, "slack_request_refused", logging.WARNING, remote=request.remote, reason=reason)
            return web.json_response({"error": "invalid request"}, status=401)
        bolt_request = AsyncBoltRequest(body=text, query=request.query_string, headers=dict(request.headers))
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    # events

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        assert self.ledger is not None
        event_id = body.get("event_id")
        if event_id and not await self.ledger.begin(event_id):
            log_event(log, "slack_event_duplicate", event_id=event_id)
            return
        try:
            await self._handle_message(event, context)
        except Exception:
            if event_id:
                await self.ledger.fail(event_id)  # Slack's retry of this event will be handled
            raise
        if event_id:
            await self.ledger.finish(event_id)

    async def _conversation_for(self, channel: str, thread_ts: str | None) -> dict[str, Any] | None:
        assert self.store is not None
        if not thread_ts:
            return None
        return await self.store.conversations.find_one({"slack.channel": channel, "slack.thread_ts": thread_ts})

    async def _handle_message(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        assert self.handoffs is not None
        subtype = event.get("subtype")
        channel = str(event.get("channel") or "")
        prefix = self.settings.slack_note_prefix
        if subtype == "message_changed":
            inner = event.get("message") or {}
            if inner.get("bot_id") or not inner.get("thread_ts"):
                return
            text = str(inner.get("text") or "")
            # Turned into a note after the fact: take the reply back from the customer.
            op = "delete" if is_note(text, prefix) else "edit"
            await self.handoffs.change_reply(f"{channel}:{inner.get('ts')}", DESK, op, slack_to_plain(text))
            return
        if subtype == "message_deleted":
            previous = event.get("previous_message") or {}
            ts = event.get("deleted_ts") or previous.get("ts")
            if previous.get("bot_id") or not ts:
                return
            await self.handoffs.change_reply(f"{channel}:{ts}", DESK, "delete")
            return
        if subtype not in _REPLY_SUBTYPES or event.get("bot_id") or not event.get("user"):
            return
        if event["user"] == context.bot_user_id:
            return
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == event.get("ts"):
            return  # a top-level channel message, not a reply to a handoff card
        conversation = await self._conversation_for(channel, thread_ts)
        if conversation is None:
            return
        text = str(event.get("text") or "")
        agent = await self.directory.agent(event["user"])
        source_key = f"{channel}:{event['ts']}"
        if is_note(text, prefix):
            if await self.handoffs.note(conversation["_id"], agent, text, source_key=source_key):
                await self._desk_event(conversation, "note_kept", source_key, channel=channel, ts=event["ts"])
            return
        attachments = await self._agent_files(conversation, event, source_key)
        plain = slack_to_plain(text)
        if not plain and not attachments:
            return
        await self.handoffs.agent_reply(
            conversation["_id"],
            agent,
            plain,
            source_key=source_key,
            desk_ref={"channel": channel, "ts": event["ts"], "thread_ts": thread_ts},
            attachments=attachments,
        )

    async def _desk_event(self, conversation: Mapping[str, Any], event: str, key: str, **data: Any) -> None:
        assert self.desk_jobs is not None and self.outbox is not None
        job = self.desk_jobs.event(conversation["_id"], event, position=int(conversation["seq"]), key=key, **data)
        await self.outbox.enqueue(present(job))

    async def _agent_files(self, conversation: Mapping[str, Any], event: dict[str, Any], key: str) -> list[Attachment]:
        """Download the agent's files from Slack (with the bot token, as Slack requires for
        url_private), check them, and keep them in the gateway's file store for the customer."""
        attachments: list[Attachment] = []
        for index, file in enumerate(event.get("files") or []):
            name = str(file.get("name") or "file")
            try:
                if self.files is None:
                    raise FileRejected(f"{name}: the gateway has no file store")
                if file.get("mode") == "tombstone" or not file.get("url_private_download"):
                    raise FileRejected(f"{name}: Slack did not share the file's content")
                if int(file.get("size") or 0) > self.policy.max_bytes:
                    raise FileRejected(f"{name}: larger than {self.settings.files_max_mb:g} MB")
                url = str(file["url_private_download"])
                if not self.file_hosts.may_send_token(url):
                    log_event(log, "slack_file_host_refused", logging.WARNING, conversation_id=str(conversation["_id"]))
                    raise FileRejected(f"{name}: not hosted by Slack")
                # url_private needs the bot token (Slack "Working with files"); without it Slack serves
                # its login page with HTTP 200, which the type check below refuses.
                data = await self.files.read_attachment(
                    Attachment(name=name, content_type=str(file.get("mimetype") or ""), url=url),
                    max_bytes=self.policy.max_bytes,
                    headers={"Authorization": f"Bearer {self.token}"},
                )
                attachments.append(
                    await self.files.put(
                        data,
                        name=name,
                        content_type=str(file.get("mimetype") or "application/octet-stream"),
                        conversation_id=str(conversation["_id"]),
                        source="agent",
                    )
                )
            except (FileRejected, FileFetchError) as exc:
                if isinstance(exc, FileFetchError) and not exc.permanent:
                    raise  # the event fails with 500 and Slack retries it: a blip must not lose the file
                await self._desk_event(conversation, "file_refused", f"{key}:{index}", reason=exc.reason)
        return attachments

    # actions

    def _button(self, method: str) -> Callable[..., Awaitable[None]]:
        async def on_click(ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
            await ack()
            await self._act(method, body, action, client)

        return on_click

    async def _act(self, name: str, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        assert self.handoffs is not None
        user = str((body.get("user") or {}).get("id") or "")
        conversation_id = parse_id(str(action.get("value") or ""))
        if conversation_id is None or not user:
            log_event(log, "slack_action_malformed", logging.WARNING, action=name)
            return
        # No fallback name here: a claim then tells the customer "Someone from our team has joined",
        # where "Support team from our team" would read oddly.
        agent = await self.directory.agent(user, fallback="")
        result: ActionResult = await getattr(self.handoffs, name)(conversation_id, agent)
        log_event(log, "slack_action", action=name, ok=result.ok, conversation_id=str(conversation_id))
        if not result.ok:
            channel = str((body.get("channel") or {}).get("id") or "")
            thread_ts = ((body.get("container") or {}).get("message_ts")) or None
            try:
                # Only the agent who clicked sees why nothing happened.
                await client.chat_postEphemeral(channel=channel, user=user, text=result.message, thread_ts=thread_ts)
            except SlackApiError as exc:
                log_event(log, "slack_ephemeral_failed", logging.WARNING, error=str(exc.response.get("error")))

    # slash command

    async def _on_support_command(self, ack: Any, command: dict[str, Any]) -> None:
        assert self.store is not None and self.rules is not None
        text = await queue_status(self.store, self.rules, str(command.get("text") or "").strip())
        await ack(text=text)  # slash command responses are visible only to the caller by default
