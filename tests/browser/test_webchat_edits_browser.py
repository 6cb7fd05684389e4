"""An agent's edit and deletion as the customer sees them in the widget, in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.conftest import RunningGateway
from tests.webchat_revisions import revise, send_agent_message

MESSAGE = '[data-testid="webchat-message"]'
TEXT = '[data-testid="webchat-message-text"]'
EDITED = '[data-testid="webchat-message-edited"]'


async def open_chat(gateway: RunningGateway, browser: Browser) -> tuple[Page, str]:
    page = await browser.new_page()
    await page.goto(f"{gateway.base_url}/")  # the demo page mounts the widget inline: it connects at once
    await expect(page.locator('[data-testid="webchat-connection"]')).to_have_attribute(
        "data-state", "online", timeout=15_000
    )
    conversation = await gateway.runtime.store.conversations.find_one({})
    return page, str(conversation["_id"])


async def test_an_edit_and_a_delete_show_in_the_widget_live_and_after_reload(
    gateway: RunningGateway, browser: Browser, tmp_path: Path
) -> None:
    page, conversation_id = await open_chat(gateway, browser)
    first = await send_agent_message(gateway, conversation_id, "Your order ships on Monday.")
    second = await send_agent_message(gateway, conversation_id, "Oops, wrong customer: NW-9999999")
    edited = page.locator(f'{MESSAGE}[data-seq="{first.seq}"]')
    deleted = page.locator(f'{MESSAGE}[data-seq="{second.seq}"]')
    await expect(deleted.locator(TEXT)).to_have_text("Oops, wrong customer: NW-9999999", timeout=15_000)
    await expect(deleted.locator("a")).to_have_count(1)  # the attachment link
    await expect(edited.locator(EDITED)).to_have_count(0)

    # The new text is untrusted like any other: shown as text, never as markup.
    new_text = "Your order ships on <b>Tuesday</b>."
    await revise(gateway, first, "edit", new_text)
    await revise(gateway, second, "delete")

    async def final_state() -> None:
        await expect(edited.locator(TEXT)).to_have_text(new_text, timeout=15_000)
        await expect(edited.locator(EDITED)).to_have_text("edited")
        await expect(edited).to_have_attribute("data-edited", "true")
        await expect(deleted.locator(TEXT)).to_have_text("Message deleted", timeout=15_000)
        await expect(deleted).to_have_attribute("data-deleted", "true")
        await expect(deleted.locator(TEXT)).to_have_css("font-style", "italic")
        await expect(deleted.locator("a, ul")).to_have_count(0)
        await expect(page.get_by_text("NW-9999999")).to_have_count(0)
        assert await page.locator(f"{MESSAGE} b").count() == 0
        await expect(page.locator(f"{MESSAGE}[data-seq]")).to_have_count(2)

    await final_state()
    await page.locator('[data-testid="webchat-messages"]').screenshot(path=str(tmp_path / "webchat-edits.png"))
    await page.reload()  # the replay carries the final state
    await expect(page.locator(f"{MESSAGE}[data-seq]")).to_have_count(2, timeout=15_000)
    await final_state()


async def test_edits_pushed_before_their_message_arrives_are_applied_the_newest_winning(
    gateway: RunningGateway, browser: Browser
) -> None:
    """While a connection replays, the server pushes edits at once: one can overtake its message."""
    page = await browser.new_page()

    def frames(*items: dict[str, Any]) -> list[str]:
        return [json.dumps(f) for f in items]

    def message(seq: int, text: str, **flags: Any) -> dict[str, Any]:
        return {"type": "message", "seq": seq, "author": "agent", "text": text, "created_at": at(0), **flags}

    def at(second: int) -> str:
        return f"2026-11-30T17:20:{second:02d}.000Z"

    async def fake_server(ws: WebSocketRoute) -> None:
        for raw in frames(
            {"type": "status", "status": "with_agent"},
            {"type": "message_edited", "seq": 1, "text": "pushed, newer", "edited_at": at(30)},
            {"type": "message_edited", "seq": 2, "text": "pushed, older", "edited_at": at(10)},
            {"type": "message_deleted", "seq": 3, "deleted_at": at(30)},
            {"type": "message_edited", "seq": 3, "text": "an edit after a deletion", "edited_at": at(40)},
            message(1, "stored before the edit"),
            message(2, "stored, newer", edited=True, edited_at=at(20)),
            message(3, "stored before the deletion"),
        ):
            ws.send(raw)

    await page.route_web_socket("**/webchat/ws*", fake_server)
    await page.goto(f"{gateway.base_url}/")

    texts = page.locator(f"{MESSAGE}[data-seq] {TEXT}")
    await expect(texts).to_have_text(["pushed, newer", "stored, newer", "Message deleted"], timeout=15_000)
    await expect(page.locator(f"{MESSAGE}[data-edited] {EDITED}")).to_have_count(2)
    await expect(page.locator(f'{MESSAGE}[data-seq="3"]')).to_have_attribute("data-deleted", "true")
