"""One look across every page (issue 19), in headless Chromium against the real service and the simulated printer:
every page the box serves (listed from its routes, so a new page is covered by itself) at 390 x 844 and
1280 x 800, signed in as the owner with a print under way, a plug and a camera, and at 390 x 844 not signed in:
no sideways scrolling, every tap target at least 44 px, axe-core without serious or critical violations in the
light and the dark theme; and the text fits a 320 px phone. The frame itself: the same menu on every page, the
current page marked, who is signed in.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import bottle
import httpx

from tests.browser import Page
from tests.history_data import fill
from tests.journeys.harness import HANG_S, PRINTER, Journey, journey, tap
from tests.journeys.look import DESKTOP, NARROW, PHONE, axe, axe_source, overflow, set_size, small_targets, theme
from tests.support import wait_for

PLUG = """
[printer.plug]
kind = "tasmota"
address = "{plug_url}"
auto_off = true
"""
# Routes that are not pages: the API, files, the WebSocket.
NOT_PAGES = re.compile(r"^/(api/|static/|ws$|favicon\.ico$|manifest\.webmanifest$|healthz$|metrics$)")
MENU = ["Dashboard", "Cameras", "History", "Power", "Settings"]


def pages(app: bottle.Bottle, job_id: int) -> list[str]:
    """Every GET page of the box, its parameters filled (a printer, a recorded job; anything else a made-up value,
    whose page says it is not found, in the frame)."""
    values = {"printer_id": PRINTER, "job_id": str(job_id)}
    found = []
    for route in app.routes:
        if route.method != "GET" or NOT_PAGES.match(route.rule):
            continue
        path = re.sub(r"<([a-z_]+)(:[^>]*)?>", lambda m: values.get(m.group(1), "unknown"), route.rule)
        found.append(path)
    return sorted(set(found))


# What "the page has settled" means where a script fills it (otherwise: loaded, and the frame knows the session).
READY = {
    "/": f"document.querySelector('article[data-printer=\"{PRINTER}\"] [data-field=state]') != null",
    "/camera": "document.querySelector('#cameras article') != null",
}
SETTLED = ("document.readyState === 'complete' && document.body?.dataset.signedIn !== undefined"
           " && !/Loading…|Connecting to the box…/.test(document.body.innerText)")


async def open_settled(page: Page, j: Journey, path: str) -> None:
    await page.navigate(j.base + path)
    await page.wait_for(f"({SETTLED}) && ({READY.get(path, 'true')})", HANG_S)


async def problems_of(page: Page, width: int, source: str) -> list[str]:
    found = [f"overflow: {p}" for p in await overflow(page, width)]
    found += [f"small tap target: {p}" for p in await small_targets(page)]
    await theme(page, "light")
    found += [f"axe (light): {p}" for p in await axe(page, source)]
    await theme(page, "dark")
    found += [f"axe (dark): {p}" for p in await axe(page, source, only=("color-contrast",))]
    await theme(page, "light")
    return found


async def test_every_page_fits_a_phone_and_a_desktop_with_big_targets_and_no_axe_violation(tmp_path: Path) -> None:
    ids = fill(tmp_path / "bambupi.sqlite3")  # the journey's [storage] file: a history to show
    source = axe_source()
    async with journey(tmp_path, camera=True, ftps=True, sim_plug=True, plug=PLUG) as j:
        assert j.running is not None
        paths = pages(j.running.web_app, ids["Benchy"])
        for needed in ("/", "/camera", "/history", f"/history/{ids['Benchy']}", "/stats", "/filament", "/power",
                       "/settings", "/login", f"/printers/{PRINTER}/mqtt"):
            assert needed in paths, (needed, paths)

        page = await j.phone()
        # The first visit, before any password: the login page offers to set one.
        await open_settled(page, j, "/login")
        anonymous = await problems_of(page, PHONE[0], source)
        await j.set_password(page)
        j.sim.printer.start_print("bracket", layers=40, minutes=120)
        await wait_for(lambda: j.running is not None and j.running.hub.printer(PRINTER)["phase"] == "printing", HANG_S)

        report: dict[str, list[str]] = {"/login (no password yet, 390)": anonymous} if anonymous else {}
        for width, height, mobile in ((*PHONE, True), (*DESKTOP, False)):
            await set_size(page, width, height, mobile=mobile)
            for path in paths:
                await open_settled(page, j, path)
                found = await problems_of(page, width, source)
                if found:
                    report[f"{path} ({width})"] = found
        # Someone not signed in (watching is open on the LAN) sees other parts: "Log in to control", hints.
        await set_size(page, *PHONE, mobile=True)
        await open_settled(page, j, "/")
        await page.wait_for("!document.getElementById('logout').hidden", HANG_S)
        await tap(page, "document.getElementById('logout')")
        await page.wait_for("!document.getElementById('login-link').hidden", HANG_S)
        for path in paths:
            await open_settled(page, j, path)
            found = await problems_of(page, PHONE[0], source)
            if found:
                report[f"{path} (390, not signed in)"] = found
        assert not report, "\n".join(f"{where}:\n  " + "\n  ".join(found) for where, found in report.items())
        assert page.exceptions == []


async def test_the_frame_is_the_same_on_every_page_and_text_fits_320_px(tmp_path: Path) -> None:
    ids = fill(tmp_path / "bambupi.sqlite3")
    async with journey(tmp_path) as j:
        assert j.running is not None
        page = await j.phone()
        await j.set_password(page)
        await set_size(page, NARROW, 640, mobile=True)
        current = {"/": "Dashboard", "/camera": "Cameras", "/history": "History", "/stats": "History",
                   "/filament": "History", f"/history/{ids['Gear']}": "History", "/power": "Power",
                   "/settings": "Settings"}
        for path in pages(j.running.web_app, ids["Gear"]):
            await open_settled(page, j, path)
            menu = await page.evaluate("[...document.querySelectorAll('nav.menu a')].map((a) => a.innerText)")
            assert menu == MENU, (path, menu)
            marked = await page.evaluate(
                "[...document.querySelectorAll('nav.menu a[aria-current=page]')].map((a) => a.innerText)")
            assert marked == ([current[path]] if path in current else []), (path, marked)
            if path != "/login":  # the login page is where one signs in and out itself
                who = "document.getElementById('whoami')"
                await page.wait_for(f"!{who}.hidden && {who}.innerText.trim() !== ''"
                                    " && !document.getElementById('logout').hidden", HANG_S)
            assert await overflow(page, NARROW) == [], path
        # Log out from the frame of a page that is not the dashboard: the menu offers Log in again.
        await open_settled(page, j, "/history")
        await tap(page, "document.getElementById('logout')")
        await page.wait_for("!document.getElementById('login-link').hidden && document.getElementById('whoami').hidden",
                            HANG_S)
        assert page.exceptions == []


async def test_the_theme_switch_is_kept_and_follows_the_system_by_default(tmp_path: Path) -> None:
    async with journey(tmp_path) as j:
        page = await j.phone()
        await open_settled(page, j, "/history")
        background = "getComputedStyle(document.body).backgroundColor"
        await page.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
        assert await page.evaluate(background) == "rgb(22, 24, 29)"  # the system's dark
        await page.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "light"}])
        assert await page.evaluate(background) == "rgb(244, 245, 247)"
        # The switch: as the system -> dark -> light; the choice is kept for the next page.
        await page.evaluate("document.getElementById('theme').click()")
        assert await page.evaluate(background) == "rgb(22, 24, 29)"
        assert "dark" in await page.evaluate("document.getElementById('theme').getAttribute('aria-label')")
        await open_settled(page, j, "/stats")
        assert await page.evaluate(background) == "rgb(22, 24, 29)"
        await page.evaluate("document.getElementById('theme').click()")
        assert await page.evaluate(background) == "rgb(244, 245, 247)"
        await page.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
        assert await page.evaluate(background) == "rgb(244, 245, 247)"  # chosen light stays light
        await page.evaluate("document.getElementById('theme').click()")  # back to the system's
        assert await page.evaluate(background) == "rgb(22, 24, 29)"
        assert page.exceptions == []


async def test_the_web_app_manifest_is_served_and_read_by_chromium_with_its_icons(tmp_path: Path) -> None:
    async with journey(tmp_path) as j:
        async with httpx.AsyncClient(base_url=j.base) as http:
            answer = await http.get("/manifest.webmanifest")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("application/manifest+json")
            manifest = answer.json()
            assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
            assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
            sizes = set()
            for icon in manifest["icons"]:
                got = await http.get(icon["src"])
                assert got.status_code == 200 and got.headers["content-type"].startswith(icon["type"]), icon
                if icon["type"] == "image/png":
                    width, height = struct.unpack(">II", got.content[16:24])  # the PNG's IHDR
                    assert f"{width}x{height}" == icon["sizes"], icon
                    sizes.add(icon["sizes"])
            assert {"192x192", "512x512"} <= sizes  # what a phone's "add to home screen" asks for
        page = await j.phone()
        for path in ("/", "/history", "/power"):  # the frame links it from every page
            await open_settled(page, j, path)
            read = await page.send("Page.getAppManifest")
            assert read["url"].endswith("/manifest.webmanifest") and read["errors"] == [], (path, read)
