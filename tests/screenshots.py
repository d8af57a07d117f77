"""The pictures in the README and docs/, taken from the running demo so they show the page as it is (make screenshots).

Starts ``bambupi demo`` (the simulated printer, its camera, its plug, printing), sets the owner's password in headless
Chromium (tests/browser.py) as a person would on the first visit, waits until the dashboard shows the print with its
camera picture, and writes phone (390 x 844) and desktop (1280 x 800) screenshots to docs/:

    dashboard.png           the dashboard on a phone (the README's picture)
    dashboard-desktop.png   the dashboard on a desktop
    history.png, power.png, settings.png, camera.png   those pages on a phone

Usage: ``python -m tests.screenshots [--out docs] [--model P1S]``. Needs chromium (as the browser tests do).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import trio

from tests.browser import Page, chromium

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "screenshots only"
WAIT_S = 120  # the demo's first print starts, its 3MF is fetched, the camera wakes: bounds a hang only
PRINTER = "demo"


async def start_demo(model: str) -> tuple[trio.Process, str]:
    """``bambupi demo`` on a free port; returns the process and its URL (from the line it prints)."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bambupi", "demo", "--host", "127.0.0.1", "--port", "0", "--model", model,
         "--time-scale", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    seen = b""
    with trio.fail_after(WAIT_S):
        while (found := re.search(rb"open (http://\S+)", seen)) is None:
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"bambupi demo ended before serving: {seen.decode(errors='replace')}")
            seen += chunk
    return process, found.group(1).decode().rstrip("/")


async def sign_up(page: Page, base: str) -> None:
    """The first visit: the login page offers to set the owner's password, then lands on the dashboard."""
    await page.navigate(base + "/login")
    await page.wait_for("document.getElementById('password') != null && !document.getElementById('form').hidden", 60)
    await page.evaluate(
        f"document.getElementById('password').value = {PASSWORD!r};"
        "for (const other of document.querySelectorAll('#form input[type=password]')) other.value = "
        f"{PASSWORD!r};"
        "document.getElementById('form').requestSubmit();"
    )
    await page.wait_for("location.pathname === '/' && document.readyState === 'complete'", 60)


async def size(page: Page, width: int, height: int, *, mobile: bool) -> None:
    await page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=2 if mobile
                    else 1, mobile=mobile)


async def shoot(page: Page, base: str, path: str, ready: str, out: Path) -> None:
    await page.navigate(base + path)
    await page.wait_for(f"document.readyState === 'complete' && ({ready})", WAIT_S)
    await trio.sleep(0.5)  # fonts and pictures painted
    await page.screenshot(out)
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


async def main(out: Path, model: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    process, base = await start_demo(model)
    try:
        async with chromium(Path(os.environ.get("TMPDIR", "/tmp")) / f"bambupi-screenshots-{os.getpid()}") as browser:
            page = await browser.new_page(width=390, height=844)
            await sign_up(page, base)
            card = f"document.querySelector('article[data-printer=\"{PRINTER}\"]')"
            printing = (f"{card}?.querySelector('[data-field=state]')?.textContent.includes('Printing')"
                        f" && Number.parseInt({card}.querySelector('[data-field=percent]')?.textContent) >= 3"
                        f" && {card}.querySelector('img[data-live]')?.naturalWidth > 0")
            await shoot(page, base, "/", printing, out / "dashboard.png")
            await size(page, 1280, 800, mobile=False)
            await shoot(page, base, "/", printing, out / "dashboard-desktop.png")
            await size(page, 390, 844, mobile=True)
            await shoot(page, base, "/camera", "document.querySelector('img.live')?.naturalWidth > 0",
                        out / "camera.png")
            await shoot(page, base, "/history", "document.querySelector('.job-row') != null", out / "history.png")
            await shoot(page, base, "/power", "document.querySelector('.power-printer') != null", out / "power.png")
            await shoot(page, base, "/settings", "!/Loading/.test(document.querySelector('main').innerText)",
                        out / "settings.png")
    finally:
        process.terminate()
        await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--model", default="P1S")
    args = parser.parse_args()
    trio.run(main, args.out.resolve(), args.model)
