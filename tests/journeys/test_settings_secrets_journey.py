"""The settings page while things change around it (issue 14, items 9 and 12): the owner moves the printer to
another port without typing its access code again and is told to; the file is edited by hand while the page is
open and the save is refused instead of undoing that edit, with what the owner typed still on the page.
"""

from __future__ import annotations

from pathlib import Path

import trio

from tests.browser import Page
from tests.journeys.harness import CODE, journey, tap

WAIT = 20  # generous: a busy CPU only slows the waits, it never fails them
PORT_INPUT = "document.getElementById('printer[0].mqtt_port')"
CODE_INPUT = "document.getElementById('printer[0].access_code')"


async def replace_text(page: Page, element: str, text: str) -> None:
    """Tap the field, select what it holds and type over it, as a thumb would."""
    await tap(page, element)
    await page.wait_for(f"document.activeElement === {element}", WAIT)
    await page.evaluate(f"{element}.select()")
    await page.send("Input.insertText", text=text)


async def save(page: Page) -> str:
    await page.evaluate("document.getElementById('status').textContent = ''")
    await tap(page, "document.querySelector('#form button[type=submit]')")
    return str(await page.wait_for("document.getElementById('status').textContent", WAIT))


async def test_a_moved_port_asks_for_the_code_and_a_hand_edit_is_not_undone(tmp_path: Path) -> None:
    async with journey(tmp_path) as j:
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))  # a port nobody answers on: where the owner says the printer moved
        new_port = listener.getsockname()[1]
        page = await j.phone()
        await j.set_password(page)
        await page.navigate(j.base + "/settings")
        await page.wait_for("!document.getElementById('form').hidden", WAIT)
        before = j.config_path.read_bytes()

        assert await page.evaluate(f"{CODE_INPUT}.placeholder") == "unchanged (type to replace)"
        await replace_text(page, PORT_INPUT, str(new_port))
        # Said as soon as the port is edited, before any save.
        assert await page.evaluate(f"{CODE_INPUT}.placeholder") == "type it again: where it is sent changed"
        assert await save(page) == "the settings have problems; nothing was saved"
        error = await page.wait_for(
            "document.querySelector('[data-error-for=\"printer[0].access_code\"]').textContent", WAIT
        )
        assert error == "type the access code again: the printer's MQTT port changed"
        assert j.config_path.read_bytes() == before and CODE not in await page.evaluate(
            "document.documentElement.outerHTML"
        )

        # While the page is open the file is edited by hand (over SSH); the owner types the code and saves.
        hand_edited = j.config_path.read_text().replace("# a journey's box", "# a journey's box, edited by hand")
        j.config_path.write_text(hand_edited)
        await replace_text(page, CODE_INPUT, "27182818")
        assert await save(page) == "the file changed since this page loaded it; reload"
        assert j.config_path.read_text() == hand_edited
        # Nothing the owner typed is lost: reloading is their choice.
        assert await page.evaluate(f"{PORT_INPUT}.value") == str(new_port)
        assert await page.evaluate(f"{CODE_INPUT}.value") == "27182818"

        # Reloaded, the page saves what the owner meant, next to the hand edit.
        await page.navigate(j.base + "/settings")
        await page.wait_for("!document.getElementById('form').hidden", WAIT)
        await replace_text(page, PORT_INPUT, str(new_port))
        await replace_text(page, CODE_INPUT, "27182818")
        status = await save(page)
        assert status.startswith("Saved."), status
        text = j.config_path.read_text()
        assert "edited by hand" in text and f"mqtt_port = {new_port}" in text and 'access_code = "27182818"' in text
        listener.close()
