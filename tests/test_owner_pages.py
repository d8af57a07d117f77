"""The owner's page flows in headless Chromium: first-visit password, login, printer controls, settings."""

from __future__ import annotations

from pathlib import Path

import trio

from bambupi.web.auth import COOKIE
from tests.browser import ARTIFACTS, Page, chromium, require_chromium
from tests.support import PASSWORD, start_box

# Only bounds a hang: a settings save under a busy CPU (the whole suite beside it) took more than 10 s once.
WAIT_S = 60

CARD = "document.querySelector('article[data-printer=\"garage\"]')"


async def fill_and_submit(page: Page, password: str) -> None:
    await page.evaluate(
        f"document.getElementById('password').value = {password!r};"
        "document.getElementById('form').requestSubmit();"
    )


async def test_set_password_log_in_pause_stop_and_edit_settings(tmp_path: Path) -> None:
    require_chromium()
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path)
        box.sim.printer.start_print("bracket", layers=40, minutes=120)
        async with chromium(tmp_path / "profile") as browser:
            page = await browser.new_page(width=390, height=844)

            # Not logged in: the card offers a login link and no control buttons.
            await page.navigate(box.base + "/")
            await page.wait_for(f"{CARD}?.querySelector('.controls a[href=\"/login\"]') != null", WAIT_S)
            assert await page.evaluate(f"{CARD}?.querySelectorAll('button[data-command]').length") == 0

            # First visit: the login page offers to set the password.
            await page.navigate(box.base + "/login")
            await page.wait_for("document.getElementById('submit').textContent === 'Set password'")
            await fill_and_submit(page, PASSWORD)
            await page.wait_for("location.pathname === '/'", WAIT_S)
            cookies = await page.send("Network.getAllCookies")
            session = next(c for c in cookies["cookies"] if c["name"] == COOKIE)
            assert session["httpOnly"] and session["sameSite"] == "Strict"

            # Controls: pause is confirmed by the printer; stop asks once more before it acts.
            await page.wait_for(f"{CARD}?.querySelector('button[data-command=\"pause\"]') != null", WAIT_S)
            await page.evaluate(f"{CARD}?.querySelector('button[data-command=\"pause\"]').click()")
            await page.wait_for(
                f"{CARD}?.querySelector('.command-status')?.textContent.includes('pause: success')", WAIT_S
            )
            await page.wait_for(
                f"{CARD}?.querySelector('[data-field=\"state\"]').textContent.includes('Paused')", WAIT_S
            )
            assert box.sim.printer.gcode_state == "PAUSE"
            await page.evaluate(f"{CARD}?.querySelector('button[data-command=\"stop\"]').click()")
            await page.wait_for(f"{CARD}?.querySelector('button[data-command=\"stop\"]').textContent.includes('again')")
            assert box.sim.printer.gcode_state == "PAUSE"  # one tap does nothing yet
            await page.evaluate(f"{CARD}?.querySelector('button[data-command=\"stop\"]').click()")
            await page.wait_for(
                f"{CARD}?.querySelector('.command-status')?.textContent.includes('stop: success')", WAIT_S
            )
            assert box.sim.printer.gcode_state == "FAILED"
            await page.screenshot(ARTIFACTS / "owner-controls-390.png")

            # Settings: rename the printer; the file keeps its comments and the dashboard shows the new name.
            await page.navigate(box.base + "/settings")
            await page.wait_for("document.getElementById('printer[0].name') != null", WAIT_S)
            assert await page.evaluate("document.getElementById('printer[0].access_code').value") == ""
            await page.evaluate(
                "document.getElementById('printer[0].name').value = 'Garage P1S';"
                "document.getElementById('form').requestSubmit();"
            )
            await page.wait_for("document.getElementById('status').textContent.startsWith('Saved.')", WAIT_S)
            await page.screenshot(ARTIFACTS / "settings-390.png")
            assert "# the one in the garage" in box.config_path.read_text()
            assert 'name = "Garage P1S"' in box.config_path.read_text()
            html = await page.evaluate("document.documentElement.outerHTML")
            assert "11223344" not in html  # the access code never reaches the browser
            assert "[printer.plug]" not in box.config_path.read_text()  # empty plug fields: no plug

            # The printer's smart plug, in its own part of the printer's box.
            await page.wait_for("document.getElementById('printer[0].plug.kind') != null", WAIT_S)
            await page.evaluate(
                "document.getElementById('printer[0].plug.kind').value = 'shelly2';"
                "document.getElementById('printer[0].plug.address').value = 'http://127.0.0.1:9';"
                "document.getElementById('printer[0].plug.password').value = 'plug-secret-1';"
                "document.getElementById('form').requestSubmit();"
            )
            await page.wait_for("document.getElementById('status').textContent.includes('smart plug set')", WAIT_S)
            text = box.config_path.read_text()
            assert '[printer.plug]\nkind = "shelly2"' in text and 'password = "plug-secret-1"' in text
            await page.wait_for("document.getElementById('printer[0].plug.kind')?.value === 'shelly2'", WAIT_S)
            html = await page.evaluate("document.documentElement.outerHTML")
            assert "plug-secret-1" not in html
        nursery.cancel_scope.cancel()


async def test_camera_page_shows_the_live_relay_and_takes_a_snapshot(tmp_path: Path) -> None:
    from bambupi.config import Config, PrinterConfig, WebConfig
    from bambupi.secret import Secret
    from bambupi.service import Service
    from bambupi.sim.simulator import Simulator

    require_chromium()
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", "01P00A000000321", "24242424", scenario="idle", camera_port=0)
        await nursery.start(sim.run)
        printer = PrinterConfig(id="cam", name="Cam P1S", model="P1S", host="127.0.0.1", serial="01P00A000000321",
                                access_code=Secret("24242424"), mqtt_port=sim.mqtt_port, camera_port=sim.camera_port)
        config = Config(printers=(printer,), web=WebConfig(host="127.0.0.1", port=0))
        running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        base = f"http://127.0.0.1:{running.port}"
        async with chromium(tmp_path / "profile") as browser:
            page = await browser.new_page(width=390, height=844)
            await page.navigate(base + "/login")
            await page.wait_for("document.getElementById('submit').textContent === 'Set password'")
            await fill_and_submit(page, PASSWORD)
            await page.wait_for("location.pathname === '/'", WAIT_S)
            await page.navigate(base + "/camera")
            # The <img> shows the MJPEG relay: frames arrive and decode at the camera's 1280x720.
            await page.wait_for("document.querySelector('img.live')?.naturalWidth === 1280", WAIT_S)
            await page.screenshot(ARTIFACTS / "camera-390.png")
            await page.evaluate("document.querySelector('button[data-take]').click()")
            await page.wait_for("document.querySelector('.shots img') != null", WAIT_S)
            assert "manual" in await page.evaluate("document.querySelector('.shots figcaption').textContent")
        nursery.cancel_scope.cancel()
