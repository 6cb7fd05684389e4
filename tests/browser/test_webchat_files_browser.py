"""A customer attaches files through the widget, in headless Chromium against a running gateway."""

from __future__ import annotations

import re
import struct
import zlib

from bson import ObjectId
from playwright.async_api import Browser, Page, expect

from tests.conftest import RunningGateway

MESSAGE = '[data-testid="webchat-message"]'
FILE_INPUT = '[data-testid="webchat-file-input"]'
STAGED = '[data-testid="webchat-staged-file"]'


def tiny_png() -> bytes:
    """A real 1x1 PNG, so the browser-side picture of it is a valid image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


async def open_chat(gateway: RunningGateway, browser: Browser) -> tuple[Page, list[str]]:
    page = await browser.new_page(viewport={"width": 390, "height": 780})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(f"{gateway.base_url}/")
    # The paperclip appears once the widget has read the gateway's file policy.
    await expect(page.get_by_role("button", name="Attach a file")).to_be_visible(timeout=15_000)
    return page, dialogs


async def test_customer_attaches_a_photo_sends_it_and_sees_it_after_reload(
    gateway: RunningGateway, browser: Browser
) -> None:
    page, dialogs = await open_chat(gateway, browser)
    accept = await page.get_attribute(FILE_INPUT, "accept")
    assert accept is not None and "image/png" in accept.split(",")

    png = tiny_png()
    await page.set_input_files(FILE_INPUT, files=[{"name": "broken-mug.png", "mimeType": "image/png", "buffer": png}])
    chip = page.locator(STAGED)
    await expect(chip).to_have_attribute("data-state", "ready", timeout=15_000)
    await expect(chip).to_contain_text("broken-mug.png")
    # A file alone is a message: send is enabled with an empty text box.
    await expect(page.locator('[data-testid="webchat-send"]')).to_be_enabled()
    await page.fill('[data-testid="webchat-input"]', "The mug arrived broken")
    await page.click('[data-testid="webchat-send"]')

    mine = page.locator(f'{MESSAGE}[data-author="customer"][data-seq]')
    await expect(mine).to_have_count(1, timeout=15_000)
    await expect(mine).to_contain_text("The mug arrived broken")
    link = mine.locator("a.gw-chat__file")
    await expect(link).to_have_count(1)
    await expect(link).to_contain_text("broken-mug.png")
    href = await link.get_attribute("href")
    assert href is not None
    match = re.search(r"/files/([0-9a-f]{24})/broken-mug\.png\?sig=[\w-]{32}$", href)
    assert match, href
    await expect(page.locator(STAGED)).to_have_count(0)  # the composer is empty again

    stored = await gateway.runtime.store.messages.find_one({"author": "customer"})
    assert stored["text"] == "The mug arrived broken"
    assert [(a["name"], a["content_type"], a["size"]) for a in stored["attachments"]] == [
        ("broken-mug.png", "image/png", len(png))
    ]
    assert stored["attachments"][0]["file_id"] == match.group(1)
    files = gateway.runtime.store.db["files.files"]
    assert (await files.find_one({"_id": ObjectId(match.group(1))}))["metadata"]["conversation_id"] == str(
        stored["conversation_id"]
    )
    # The link works (rebased: settings.base_url names another port than the test server's).
    async with gateway.http.get(gateway.base_url + href[href.index("/files/") :]) as response:
        assert response.status == 200 and await response.read() == png

    await page.reload()
    replayed = page.locator(f'{MESSAGE}[data-author="customer"][data-seq] a.gw-chat__file')
    await expect(replayed).to_contain_text("broken-mug.png", timeout=15_000)
    assert dialogs == []


async def test_a_refused_file_is_explained_inside_the_widget(gateway: RunningGateway, browser: Browser) -> None:
    page, dialogs = await open_chat(gateway, browser)
    exe = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64
    await page.set_input_files(
        FILE_INPUT, files=[{"name": "invoice.exe", "mimeType": "application/x-msdownload", "buffer": exe}]
    )
    error = page.locator('[data-testid="webchat-upload-error"]')
    await expect(error).to_have_text("invoice.exe: type application/x-msdownload is not accepted", timeout=15_000)
    await expect(page.locator(STAGED)).to_have_count(0)
    await expect(page.locator('[data-testid="webchat-send"]')).to_be_disabled()
    assert await gateway.runtime.store.db["files.files"].count_documents({}) == 0

    # Removing a staged file by keyboard: the chip's button has an accessible name.
    await page.set_input_files(
        FILE_INPUT, files=[{"name": "note.txt", "mimeType": "text/plain", "buffer": b"order NW-1234567\n"}]
    )
    await expect(error).to_be_hidden()
    remove = page.get_by_role("button", name="Remove note.txt")
    await expect(remove).to_be_visible(timeout=15_000)
    await remove.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(STAGED)).to_have_count(0)
    await expect(page.locator('[data-testid="webchat-send"]')).to_be_disabled()
    assert dialogs == []
