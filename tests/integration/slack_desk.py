"""The Slack desk for integration tests: a real gateway wired to a local fake Slack, and the helpers
that drive it (signed events, button clicks, a web chat customer handed off).

Its fixtures (`slack`, `routing_file`, `desk`) are registered for tests/integration by its conftest.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from bson import ObjectId

from tests.conftest import ROOT, GatewayFactory, RunningGateway, receive_until
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_events import block_action, event_callback, post_event, post_interaction, thread_message
from tests.helpers import eventually

SECRET = "test-signing-secret-0123456789abcdef"
CHANNELS = {"C0SUPPORT": "support", "C0BILLING": "support-billing", "C0ORDERS": "support-orders", "C0ACCT": "accounts"}
USERS = {
    "U0DANA": {"real_name": "Dana Reyes", "display_name": "Dana"},
    "U0SAM": {"real_name": "Sam Okafor", "display_name": ""},
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackApi]:
    fake = await FakeSlackApi(channels=CHANNELS, users=USERS).start()
    yield fake
    await fake.close()


@pytest.fixture
def routing_file(tmp_path: Path) -> Path:
    """The sample rules, with the general queue's group set, so SLA reminders can mention it."""
    rules = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    rules["queues"][0]["slack_user_group"] = "S0CARE"
    rules["training_examples"] = str(ROOT / "config" / "triage" / "intent-examples.csv")
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


@dataclass
class Desk:
    gateway: RunningGateway
    slack: FakeSlackApi

    @property
    def events_url(self) -> str:
        return f"{self.gateway.base_url}/slack/events"

    async def event(self, inner: dict[str, Any], **kwargs: Any) -> int:
        response = await post_event(self.gateway.http, self.events_url, SECRET, event_callback(inner), **kwargs)
        return response.status

    async def click(self, action_id: str, conversation_id: str, user: str = "U0DANA") -> int:
        slack = (await self.conversation(conversation_id))["slack"]
        payload = block_action(
            action_id,
            conversation_id,
            user_id=user,
            user_name=user.lower(),
            channel=slack["channel"],
            message_ts=slack["card_ts"],
        )
        response = await post_interaction(self.gateway.http, self.events_url, SECRET, payload)
        return response.status

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        store = self.gateway.runtime.store
        assert store is not None
        doc = await store.get_conversation(ObjectId(conversation_id))
        assert doc is not None
        return doc

    async def card(self, conversation_id: str) -> tuple[str, str]:
        async def posted() -> bool:
            return bool(((await self.conversation(conversation_id)).get("slack") or {}).get("last_seq"))

        await eventually(posted)
        slack = (await self.conversation(conversation_id))["slack"]
        return slack["channel"], slack["thread_ts"]

    def agent_says(self, channel: str, thread_ts: str, user: str, text: str, **kwargs: Any) -> dict[str, Any]:
        """A person's reply: in the fake's history (so reactions can land on it), and as the event."""
        message = self.slack.add_user_message(channel, user, text, thread_ts=thread_ts, files=kwargs.get("files"))
        return thread_message(channel, thread_ts, user, text, ts=message.ts, **kwargs)


async def start_desk(gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path, **kw: Any) -> Desk:
    gateway = await gateway_factory(
        slack_bot_token=slack.token,
        slack_signing_secret=SECRET,
        slack_api_url=f"{slack.url}/api/",
        slack_default_channel="#support",
        routing_file=routing_file,
        **kw,
    )
    return Desk(gateway, slack)


@pytest.fixture
async def desk(gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path) -> Desk:
    return await start_desk(gateway_factory, slack, routing_file)


async def webchat_handoff(desk: Desk, text: str = "I want to talk to a human please") -> tuple[str, Any, str]:
    session = await desk.gateway.new_session()
    ws = await desk.gateway.connect(session["token"])
    await ws.send_json({"type": "message", "text": text, "client_msg_id": uuid.uuid4().hex})
    await receive_until(ws, lambda f: f.get("type") == "status" and f.get("status") == "waiting_for_agent")
    return session["conversation_id"], ws, session["token"]


def texts(messages: list[Any]) -> str:
    return "\n".join(m.text or "" for m in messages)
