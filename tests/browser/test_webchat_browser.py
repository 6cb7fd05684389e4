"""The web chat as a customer sees it, in headless Chromium against a running gateway."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.conftest import RunningGateway

MESSAGE = '[data-testid="webchat-message"]'


async def send(page: Page, text: str) -> None:
    await page.fill('[data-testid="webchat-input"]', text)
    await page.click('[data-testid="webchat-send"]')


async def test_customer_asks_about_shipping_gets_the_kb_answer_and_sees_history_after_reload(
    gateway: RunningGateway, browser: Browser, tmp_path: Path
) -> None:
    page = await browser.new_page(viewport={"width": 390, "height": 780})  # a phone
    await page.goto(f"{gateway.base_url}/")
    await send(page, "How much does shipping cost?")

    answer = page.locator(f'{MESSAGE}[data-author="ai"]').first
    await expect(answer).to_contain_text("Source: Shipping", timeout=15_000)
    await expect(page.locator(f'{MESSAGE}[data-author="customer"]')).to_have_attribute("data-seq", "1")
    await page.screenshot(path=str(tmp_path / "webchat-phone.png"))

    await page.reload()
    history = page.locator(f"{MESSAGE}[data-seq]")
    await expect(history).to_have_count(2, timeout=15_000)
    await expect(history.nth(0)).to_contain_text("How much does shipping cost?")
    await expect(history.nth(1)).to_contain_text("Source: Shipping")
    assert await gateway.runtime.store.messages.count_documents({}) == 2


async def test_customer_text_is_rendered_as_text_never_as_html(gateway: RunningGateway, browser: Browser) -> None:
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(f"{gateway.base_url}/")
    payload = '<img src=x onerror="alert(1)"><b>bold</b>'
    await send(page, payload)

    mine = page.locator(f'{MESSAGE}[data-author="customer"] [data-testid="webchat-message-text"]')
    await expect(mine).to_have_text(payload, timeout=15_000)
    await expect(page.locator(f'{MESSAGE}[data-author="ai"]')).to_have_count(1, timeout=15_000)
    assert await page.locator(f"{MESSAGE} img, {MESSAGE} b").count() == 0
    assert dialogs == []
