"""An X1C owner watches the printer's camera on a phone (issue 18, item 3): the simulated printer's RTSPS camera
(LIVE555-like: Digest login, H.264) comes through the box's TLS proxy and ffmpeg to the camera page, live, at the
decoder's width; with "LAN Only Liveview" off the page says so and what to do, instead of an error loop."""

from __future__ import annotations

import os
from pathlib import Path

from tests.browser import ARTIFACTS
from tests.journeys.harness import CODE, PRINTER, journey

WAIT = 60  # generous: the first frame waits for the decoder to start and for a keyframe


def cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def descendants(root: int) -> list[int]:
    parents, found = {root}, []
    for _ in range(4):  # the depth of anything this test starts
        for entry in Path("/proc").iterdir():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) if entry.name.isdigit() else 0
            except (OSError, ValueError, IndexError):
                continue
            if parent in parents and int(entry.name) not in found:
                found.append(int(entry.name))
                parents.add(int(entry.name))
    return found


async def test_the_x1c_camera_plays_on_the_camera_page(tmp_path: Path) -> None:
    async with journey(tmp_path, model="X1C", rtsps=True) as j:
        page = await j.phone()
        await page.navigate(j.base + "/")
        link = j.card("a[data-field=camera]")
        await page.wait_for(f"{link} != null", WAIT)
        await page.evaluate(f"{link}.click()")
        await page.wait_for("location.pathname === '/camera'", WAIT)
        view = f"document.getElementById('camera-{PRINTER}')"
        image = f"{view}?.querySelector('img.live')"
        await page.wait_for(f"{view}?.dataset.live === 'live' && {image}.naturalWidth === 1280", WAIT)
        frames = int(await page.evaluate(f"{image}.dataset.frames"))
        await page.wait_for(f"Number({image}.dataset.frames) >= {frames + 2}", WAIT)  # moving, not one picture
        await page.screenshot(ARTIFACTS / "journey-camera-rtsps-390.png")
        assert j.sim.rtsps is not None and j.sim.rtsps.clients == 1  # one upstream, however many viewers
        decoders = [pid for pid in descendants(os.getpid()) if b"ffmpeg" in cmdline(pid)]
        assert decoders  # the box's decoder (and the simulator's encoder) run here...
        assert all(CODE.encode() not in cmdline(pid) for pid in descendants(os.getpid()))  # ...and `ps` shows no code
        assert page.exceptions == []


async def test_liveview_off_is_explained_on_the_camera_page(tmp_path: Path) -> None:
    async with journey(tmp_path, model="X1C") as j:
        # The harness switches the camera off in the config without a camera; here it is on ("auto") and the
        # printer's report says Liveview is off (the simulator serves no RTSPS camera).
        config = j.config_path.read_text().replace('camera = "off"', "")
        j.config_path.write_text(config)
        await j.restart_service()
        page = await j.phone()
        await page.navigate(j.base + "/camera")
        view = f"document.getElementById('camera-{PRINTER}')"
        await page.wait_for(f"({view}?.textContent || '').includes('LAN Only Liveview is off')", WAIT)
        text = await page.evaluate(f"{view}.textContent")
        assert "turn it on in the settings on the printer's screen" in text and "Settings → General" in text
        await page.screenshot(ARTIFACTS / "journey-camera-liveview-off-390.png")
        assert page.exceptions == []
