"""The dashboard card's new parts (issue 19), on a phone against the real service, the simulated printer, its camera,
its FTPS (the job's 3MF with the plate picture) and a simulated plug:

- while printing, the card shows a camera picture that is refreshed (a new snapshot every few seconds); a tap opens
  the camera page at this printer; once the print ends the picture goes;
- the plate's picture from the job's file, a tap opens the job in the history;
- after the print, the auto-off countdown with its Cancel: a tap cancels it, the plug stays on;
- the plug's state and watts link to /power, where the same frame and menu are.
"""

from __future__ import annotations

from pathlib import Path

from tests.journeys.harness import HANG_S, PRINTER, Journey, journey, tap
from tests.support import wait_for

PLUG = """
[printer.plug]
kind = "tasmota"
address = "{plug_url}"
auto_off = true
auto_off_after_min = 0
auto_off_warning_s = 900
"""


def card(j: Journey, inner: str) -> str:
    return j.card(inner)


async def test_a_printing_card_shows_the_camera_and_the_plate_and_each_opens_its_page(tmp_path: Path) -> None:
    async with journey(tmp_path, camera=True, ftps=True) as j:
        page = await j.phone()
        await j.set_password(page)
        j.sim.printer.start_print("bracket", layers=40, minutes=120)
        live = card(j, "img[data-live]")
        await page.wait_for(f"{live}?.naturalWidth > 0", HANG_S)
        first = await page.evaluate(f"{live}.src")
        # Refreshed: another snapshot replaces it (a new object URL), without reloading the card.
        await page.wait_for(f"{live}.src !== {first!r}", HANG_S)
        assert await page.evaluate(f"{card(j, '.live-word')}.textContent.startsWith('live')")
        plate = card(j, "img.plate")
        await page.wait_for(f"{plate}?.complete && {plate}.naturalWidth > 0", HANG_S)
        assert "Plate of bracket" in await page.evaluate(f"{plate}.alt")

        await tap(page, live)
        await page.wait_for(f"location.pathname === '/camera' && location.hash === '#camera-{PRINTER}'", HANG_S)
        await page.wait_for("document.querySelector('#cameras img.live')?.dataset.frames > 0", HANG_S)

        await page.navigate(j.base + "/")
        await page.wait_for(f"{plate}?.naturalWidth > 0", HANG_S)
        job_href = await page.evaluate(f"{plate}.closest('a').getAttribute('href')")
        await tap(page, plate)
        await page.wait_for(f"location.pathname === {job_href!r} && document.querySelector('.job-detail') != null",
                            HANG_S)
        assert "bracket" in await page.evaluate("document.querySelector('.job-detail h2').textContent")

        # The print ends: no camera picture on the card any more (the relay may let the camera rest).
        await page.navigate(j.base + "/")
        await page.wait_for(f"{live} != null", HANG_S)
        j.sim.printer.stop()
        await page.wait_for(f"{card(j, '[data-field=state]')}?.textContent.includes('Cancelled') && {live} == null",
                            HANG_S)
        assert page.exceptions == []


async def test_the_auto_off_countdown_is_on_the_card_and_its_cancel_keeps_the_plug_on(tmp_path: Path) -> None:
    async with journey(tmp_path, sim_plug=True, plug=PLUG) as j:
        assert j.sim_plug is not None
        j.sim.printer.tick_s = 0.1  # a report every 0.1 s: the print and the cooling take seconds
        page = await j.phone()
        await j.set_password(page)
        # The plug on the card: its state and watts, a link to /power.
        plug = card(j, "[data-field=power]")
        await page.wait_for(f"{plug}?.textContent.startsWith('Plug on')", HANG_S)

        j.sim.printer.start_print("cube", layers=5, minutes=1)
        countdown = card(j, "[data-field=auto-off] .countdown")
        await page.wait_for(f"/^off in \\d+:\\d\\d \\(at /.test({countdown}?.textContent ?? '')", HANG_S)
        before = await page.evaluate(f"{countdown}.textContent")
        await page.wait_for(f"{countdown}.textContent !== {before!r}", HANG_S)  # it counts down in place
        await tap(page, card(j, "[data-auto-off-cancel]"))
        await page.wait_for(f"{card(j, '[data-field=auto-off]')} == null && "
                            f"{card(j, '.command-status')}?.textContent.includes('auto-off cancelled')", HANG_S)
        assert j.running is not None
        await wait_for(lambda: j.running is not None
                       and not j.running.power.auto_off.status(PRINTER)["armed"], HANG_S)
        assert j.sim_plug.on and j.sim_plug.commands.count("Power Off") == 0

        await tap(page, plug)
        await page.wait_for("location.pathname === '/power' && document.querySelector('.power-printer') != null",
                            HANG_S)
        assert await page.evaluate("document.querySelector('nav.menu a[aria-current=page]').innerText") == "Power"
        assert page.exceptions == []


async def test_a_viewer_sees_the_countdown_without_its_cancel(tmp_path: Path) -> None:
    """Nobody signed in (watching is open on the LAN): the countdown shows, the Cancel does not."""
    async with journey(tmp_path, sim_plug=True, plug=PLUG) as j:
        j.sim.printer.tick_s = 0.1
        page = await j.phone()
        await j.set_password(page)
        await page.wait_for("!document.getElementById('logout').hidden", HANG_S)  # shown once the session is known
        await tap(page, "document.getElementById('logout')")
        await page.wait_for("!document.getElementById('login-link').hidden", HANG_S)
        j.sim.printer.start_print("cube", layers=5, minutes=1)
        countdown = card(j, "[data-field=auto-off] .countdown")
        await page.wait_for(f"/^off in /.test({countdown}?.textContent ?? '')", HANG_S)
        assert await page.evaluate(f"{card(j, '[data-auto-off-cancel]')} == null")
        assert page.exceptions == []


async def test_a_card_whose_camera_needs_a_login_says_so_and_shows_it_once_signed_in(tmp_path: Path) -> None:
    async with journey(tmp_path, camera=True) as j:
        # web.camera_access = "viewer": the camera is for people with an account (the box restarts with it).
        j.config_path.write_text(j.config_path.read_text().replace("[web]\n", '[web]\ncamera_access = "viewer"\n', 1))
        await j.restart_service()
        j.sim.printer.start_print("bracket", layers=40, minutes=120)
        page = await j.phone()
        await page.navigate(j.base + "/")
        word = card(j, ".live-word")
        await page.wait_for(f"{word}?.textContent === 'log in to see the camera'", HANG_S)
        assert await page.evaluate(f"{card(j, 'img[data-live]')}.naturalWidth") == 0
        await j.set_password(page)
        await page.wait_for(f"{card(j, 'img[data-live]')}?.naturalWidth > 0", HANG_S)
        assert (await page.evaluate(f"{word}.textContent")).startswith("live")
        assert page.exceptions == []
