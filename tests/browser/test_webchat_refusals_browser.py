"""The widget under refusals: a malformed message is given up on (also after a reload), a socket replaced
by a newer tab does not fight back, and the demo page runs under its Content-Security-Policy."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, Page, WebSocket, expect

from tests.conftest import GatewayFactory, RunningGateway

MESSAGE = '[data-testid="webchat-message"]'


async def send(page: Page, text: str) -> None:
    await page.fill('[data-testid="webchat-input"]', text)
    await page.click('[data-testid="webchat-send"]')


async def test_a_message_refused_as_malformed_is_not_resent_even_after_a_reload(
    gateway: RunningGateway, browser: Browser
) -> None:
    page = await browser.new_page()
    sent: list[str] = []

    def watch(ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: sent.append(str(payload)))

    page.on("websocket", watch)
    await page.goto(f"{gateway.base_url}/")
    await expect(page.locator('[data-testid="webchat-connection"]')).to_have_attribute("data-state", "online")
    # Half an emoji, as a buggy input method leaves it: the textarea holds a lone surrogate.
    await page.evaluate("""() => {
        const input = document.querySelector('[data-testid="webchat-input"]');
        input.value = 'broken \\ud83d';
        input.dispatchEvent(new Event('input'));
    }""")
    await page.click('[data-testid="webchat-send"]')

    refused = page.locator(f'{MESSAGE}[data-author="customer"]').first
    await expect(refused).to_contain_text("Not delivered", timeout=15_000)
    await expect(page.locator('[data-testid="webchat-notice"]')).to_contain_text("broken character")
    cid = await refused.get_attribute("data-client-msg-id")
    assert cid and sum(cid in frame for frame in sent) == 1
    assert await page.evaluate("() => Object.keys(localStorage).filter((k) => k.endsWith(':outbox'))") == []

    # The customer's next message is not blocked behind it.
    await send(page, "How much does shipping cost?")
    await expect(page.locator(f'{MESSAGE}[data-author="ai"]')).to_contain_text("Shipping", timeout=15_000)

    await page.reload()
    await expect(page.locator(f"{MESSAGE}[data-seq]")).to_have_count(2, timeout=15_000)
    await asyncio.sleep(4)  # longer than the widget's resend interval (3 s)
    assert sum(cid in frame for frame in sent) == 1
    assert await page.locator(f"{MESSAGE}:not([data-seq])").count() == 0
    assert await gateway.runtime.store.messages.count_documents({}) == 2


async def test_a_tab_whose_socket_was_replaced_waits_instead_of_fighting_back(
    gateway_factory: GatewayFactory, browser: Browser
) -> None:
    gw = await gateway_factory(webchat_max_sockets_per_conversation=1)
    context = await browser.new_context()  # one localStorage: both tabs share the session
    first, second = await context.new_page(), await context.new_page()
    opened = {"first": 0, "second": 0}
    first.on("websocket", lambda ws: opened.__setitem__("first", opened["first"] + 1))
    second.on("websocket", lambda ws: opened.__setitem__("second", opened["second"] + 1))
    connection = '[data-testid="webchat-connection"]'

    await first.goto(f"{gw.base_url}/")
    await expect(first.locator(connection)).to_have_attribute("data-state", "online")
    await second.goto(f"{gw.base_url}/")
    await expect(second.locator(connection)).to_have_attribute("data-state", "online")
    await expect(first.locator(connection)).to_have_attribute("data-state", "reconnecting")
    await asyncio.sleep(3)
    assert opened == {"first": 1, "second": 1}
    await expect(second.locator(connection)).to_have_attribute("data-state", "online")

    # Sending from the quiet tab takes the socket back.
    await send(first, "How much does shipping cost?")
    await expect(first.locator(f'{MESSAGE}[data-author="ai"]')).to_contain_text("Shipping", timeout=15_000)
    assert opened["first"] == 2
    await context.close()


async def test_the_demo_page_works_under_its_content_security_policy(gateway: RunningGateway, browser: Browser) -> None:
    page = await browser.new_page()
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    await page.goto(f"{gateway.base_url}/")
    # The inline script (allowed by its hash) wrote the embed snippet; the widget (script-src 'self')
    # connected its WebSocket (connect-src 'self').
    await expect(page.locator("#snippet")).to_contain_text(f"{gateway.base_url}/webchat/widget.js")
    await expect(page.locator('[data-testid="webchat-connection"]')).to_have_attribute("data-state", "online")
    await send(page, "How much does shipping cost?")
    await expect(page.locator(f'{MESSAGE}[data-author="ai"]')).to_contain_text("Shipping", timeout=15_000)
    assert violations == []
