"""The settings page as a real form (issue 19), on a phone (390x844) and a desktop (1280x800) in Chromium.

The owner saves one field of each kind of control at once (a switch, a number with its unit, a choice list, a time
range, a password, a text) and reads in the save bar, without scrolling, what was applied at once and what needs a
restart; the file holds each value as its type. A bad number shows its error next to its field, in view. The plug's
type shows only that type's fields; an ntfy server URL is shown, a Discord webhook URL (its token) is not. Nothing
overflows the screen sideways and everything a finger taps is at least 44 px.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomlkit

from tests.browser import Page
from tests.journeys.harness import journey, tap
from tests.journeys.look import axe, axe_source, overflow, small_targets, theme
from tests.journeys.test_settings_secrets_journey import replace_text

WAIT = 30  # generous: a busy CPU only slows the waits, it never fails them
PLUG = '[printer.plug]\nkind = "tasmota"\naddress = "{plug_url}"\nusername = "admin"\n'
EXTRA = """
[[notify]]
name = "phone"
kind = "ntfy"
topic = "garage-news"
url = "http://127.0.0.1:9/ntfy-server"

[[notify]]
name = "team"
kind = "discord"
url = "http://127.0.0.1:9/api/webhooks/1/discord-webhook-token"
"""
PLUG_PASSWORD = "plug pass 42"
SHOTS = os.environ.get("BAMBUPI_SHOTS")  # a folder: save screenshots there (to look at the page by eye)


def by_id(element_id: str) -> str:
    return f"document.getElementById({element_id!r})"


def shown_keys(box: str) -> str:
    """The keys whose rows are shown in ``box`` (a JS expression), in page order."""
    return (f"[...{box}.querySelectorAll(':scope > .fields > .field, :scope > details > .fields > .field')]"
            ".filter((row) => !row.hidden).map((row) => row.dataset.key)")


PLUG_BOX = "document.querySelector('#list-printer .item fieldset.subtable')"
IN_VIEW = """((e) => { const r = e.getBoundingClientRect();
  const bar = document.querySelector('.savebar').getBoundingClientRect();
  return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight
    && (e.closest('.savebar') !== null || r.bottom <= bar.top); })"""


async def open_section(page: Page, name: str) -> None:
    """Tap a section's title to unfold it (sections other than printers and notifications start folded)."""
    section = f"document.getElementById('section-{name}')"
    if not await page.evaluate(f"{section}.open"):
        await tap(page, f"{section}.querySelector('summary')")
        await page.wait_for(f"{section}.open", WAIT)


async def choose(page: Page, select: str, value: str) -> None:
    """Pick ``value`` in a choice list, as a tap on the list and one on the option does."""
    await tap(page, select)
    await page.evaluate(f"(() => {{ const s = {select}; s.value = {value!r};"
                        " s.dispatchEvent(new Event('input', {bubbles: true}));"
                        " s.dispatchEvent(new Event('change', {bubbles: true})); })()")


async def set_time(page: Page, element: str, value: str) -> None:
    await tap(page, element)
    await page.evaluate(f"(() => {{ const e = {element}; e.value = {value!r};"
                        " e.dispatchEvent(new Event('input', {bubbles: true})); })()")


async def save(page: Page) -> str:
    await page.evaluate("document.getElementById('status').textContent = ''")
    await tap(page, "document.querySelector('#form button[type=submit]')")
    return str(await page.wait_for("document.getElementById('status').textContent", WAIT))


async def check_layout(page: Page, width: int, *, everything: bool = False) -> None:
    """What every page must be (tests/journeys/look.py): nothing wider than the screen, every tap target at least
    44 px, no serious or critical axe-core violation in the light and the dark theme. ``everything``: with every
    section and "More settings" unfolded, so each control of the form is checked."""
    if everything:
        folded = await page.evaluate("[...document.querySelectorAll('#form details:not([open])')].map((d, i) =>"
                                     " (d.dataset.checkFolded = '1', i)).length")
        await page.evaluate("document.querySelectorAll('#form details').forEach((d) => { d.open = true; })")
    found = [f"overflow: {p}" for p in await overflow(page, width)]
    found += [f"small tap target: {p}" for p in await small_targets(page)]
    source = axe_source()
    for name in ("light", "dark"):
        await theme(page, name)
        found += [f"axe ({name}): {p}" for p in await axe(page, source)]
    await theme(page, "light")
    if everything and folded:
        await page.evaluate("document.querySelectorAll('[data-check-folded]').forEach((d) => {"
                            " d.open = false; delete d.dataset.checkFolded; })")
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("size", [(390, 844), (1280, 800)], ids=["phone", "desktop"])
async def test_one_field_of_each_kind_saved_errors_in_view_and_only_the_plugs_own_fields(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    async with journey(tmp_path, plug=PLUG, sim_plug=True, extra=EXTRA) as j:
        page = await j.browser.new_page(width=size[0], height=size[1])
        await j.set_password(page)
        await page.navigate(j.base + "/settings")
        await page.wait_for(
            "!document.getElementById('form').hidden && document.getElementById('list-printer') !== null", WAIT)
        await check_layout(page, size[0], everything=True)
        if SHOTS:
            await page.screenshot(Path(SHOTS) / f"settings-{size[0]}-top.png")

        # The plug's type decides its fields: Tasmota takes a user and a password, Home Assistant a token and
        # entities, no plug nothing more.
        plug_kind = by_id("printer[0].plug.kind")
        assert await page.evaluate(f"{plug_kind}.tagName") == "SELECT"
        tasmota = await page.evaluate(shown_keys(PLUG_BOX))
        assert {"username", "password"} <= set(tasmota) and not {"token", "entity", "power_entity", "channel"} & set(
            tasmota)
        await choose(page, plug_kind, "homeassistant")
        assistant = await page.evaluate(shown_keys(PLUG_BOX))
        assert {"token", "entity", "power_entity"} <= set(assistant)
        assert not {"username", "password", "channel"} & set(assistant)
        await choose(page, plug_kind, "")
        assert await page.evaluate(shown_keys(PLUG_BOX)) == ["kind"]  # no plug: nothing else to fill in
        await choose(page, plug_kind, "tasmota")
        assert await page.evaluate(shown_keys(PLUG_BOX)) == tasmota

        # An ntfy server is an address, shown as typed; a Discord webhook's URL carries its token: never shown.
        ntfy_url, discord_url = by_id("notify[0].url"), by_id("notify[1].url")
        assert await page.evaluate(f"[{ntfy_url}.type, {ntfy_url}.value]") == [
            "text", "http://127.0.0.1:9/ntfy-server"]
        assert await page.evaluate(f"[{discord_url}.type, {discord_url}.value, {discord_url}.placeholder]") == [
            "password", "", "unchanged (type to replace)"]
        assert "discord-webhook-token" not in await page.evaluate("document.documentElement.outerHTML")
        # The ntfy channel made a Discord one: its server's address is no webhook, the field empties for one.
        kind = by_id("notify[0].kind")
        await choose(page, kind, "discord")
        assert await page.evaluate(f"[{ntfy_url}.type, {ntfy_url}.value]") == ["password", ""]
        await choose(page, kind, "ntfy")  # changed its mind: the server typed again, as it was
        await replace_text(page, ntfy_url, "http://127.0.0.1:9/ntfy-server")
        assert await page.evaluate(f"{ntfy_url}.type") == "text"

        # A phone shows the sections folded but printers and notifications: the rest opens with a tap.
        assert await page.evaluate("[...document.querySelectorAll('details.settings-section')]"
                                   ".filter((d) => d.open).map((d) => d.id)") == ["section-printer", "section-notify"]
        for name in ("discovery", "alerts", "panel", "camera"):
            await open_section(page, name)

        # One of each: a switch, a number with its unit, a choice, a time range, a password, a text.
        switch = by_id("discovery.enabled")
        assert await page.evaluate(f"[{switch}.type, {switch}.getAttribute('role'), {switch}.checked]") == [
            "checkbox", "switch", True]
        await tap(page, switch)
        assert await page.evaluate(f"{switch}.checked") is False
        minutes = by_id("alerts.ending_soon_min")
        assert await page.evaluate(f"[{minutes}.type, {minutes}.closest('.field').querySelector('.unit').textContent]"
                                   ) == ["number", "min"]
        await replace_text(page, minutes, "7")
        await choose(page, by_id("panel.buzzer"), "passive")
        await set_time(page, by_id("alerts.quiet_hours"), "22:30")
        await set_time(page, by_id("alerts.quiet_hours.to"), "06:45")
        password = by_id("printer[0].plug.password")
        assert await page.evaluate(f"{password}.type") == "password"
        await replace_text(page, password, PLUG_PASSWORD)
        await replace_text(page, by_id("printer[0].name"), "Workshop P1S")
        assert await page.evaluate("document.getElementById('dirty').textContent") == "Unsaved changes"

        status = await save(page)
        assert status.startswith("Saved."), status
        # Said in the save bar, in view wherever the page was scrolled: applied at once vs. waiting for a restart.
        applied = await page.evaluate("document.querySelector('#status .applied').textContent")
        assert applied.startswith("Applied now:") and "printer garage" in applied, applied
        assert await page.evaluate("document.querySelector('#status .restart').textContent") == (
            "Needs a restart: Finding printers.")
        await page.evaluate("scrollTo(0, 0)")
        assert await page.evaluate(f"{IN_VIEW}(document.getElementById('status'))")
        await page.evaluate("scrollTo(0, document.body.scrollHeight / 2)")
        assert await page.evaluate(f"{IN_VIEW}(document.getElementById('status'))")
        if SHOTS:
            await page.screenshot(Path(SHOTS) / f"settings-{size[0]}-saved.png")

        saved = tomlkit.parse(j.config_path.read_text()).unwrap()
        assert saved["discovery"]["enabled"] is False
        assert saved["alerts"]["ending_soon_min"] == 7 and saved["alerts"]["quiet_hours"] == "22:30-06:45"
        assert saved["panel"]["buzzer"] == "passive"
        assert saved["printer"][0]["name"] == "Workshop P1S"
        assert saved["printer"][0]["plug"] == {"kind": "tasmota", "address": j.sim_plug.url if j.sim_plug else "",
                                               "username": "admin", "password": PLUG_PASSWORD}
        assert saved["notify"][0]["url"] == "http://127.0.0.1:9/ntfy-server"  # untouched, kept as it was
        assert j.running is not None and j.running.hub.printer("garage")["name"] == "Workshop P1S"  # applied live

        # Read back: each control shows what was saved; the password is not on the page.
        await page.wait_for(f"{by_id('printer[0].name')}?.value === 'Workshop P1S'", WAIT)
        assert await page.evaluate(
            f"[{switch}.checked, {minutes}.value, {by_id('panel.buzzer')}.value, {by_id('alerts.quiet_hours')}.value,"
            f" {by_id('alerts.quiet_hours.to')}.value, {password}.value, {password}.placeholder]"
        ) == [False, "7", "passive", "22:30", "06:45", "", "unchanged (type to replace)"]
        assert PLUG_PASSWORD not in await page.evaluate("document.documentElement.outerHTML")

        # A bad value: refused whole, its error next to its field and in view, the save bar says so.
        before = j.config_path.read_bytes()
        await replace_text(page, minutes, "9999")
        await page.evaluate("scrollTo(0, 0)")
        assert await save(page) == "the settings have problems; nothing was saved"
        error = "document.querySelector('[data-error-for=\"alerts.ending_soon_min\"]')"
        assert await page.wait_for(f"{error}.textContent", WAIT) == "must be between 0 and 600, got 9999"
        assert await page.evaluate(f"{error}.closest('.field') === {minutes}.closest('.field')")
        assert await page.evaluate(f"{IN_VIEW}({error}) && {IN_VIEW}({minutes})")
        assert await page.evaluate(f"document.activeElement === {minutes}")
        assert j.config_path.read_bytes() == before
        await check_layout(page, size[0])
        if SHOTS:
            await page.screenshot(Path(SHOTS) / f"settings-{size[0]}-error.png")

        # A bad value under "More settings" opens it to show the error.
        slow = by_id("camera.write_timeout_s")
        await tap(page, f"{slow}.closest('details').querySelector('summary')")
        await replace_text(page, minutes, "7")
        await replace_text(page, slow, "0.1")
        await page.evaluate(f"{slow}.closest('details').open = false")
        assert await save(page) == "the settings have problems; nothing was saved"
        error = "document.querySelector('[data-error-for=\"camera.write_timeout_s\"]')"
        assert (await page.wait_for(f"{error}.textContent", WAIT)).startswith("must be between 0.5 and 600")
        assert await page.evaluate(f"{slow}.closest('details').open && {IN_VIEW}({error})")
        assert page.exceptions == []


def button(text: str, inside: str = "document") -> str:
    return f"[...{inside}.querySelectorAll('button')].find((b) => b.textContent === {text!r})"


async def test_a_printer_and_its_plug_added_then_removed_as_a_person_does(tmp_path: Path) -> None:
    async with journey(tmp_path) as j:
        page = await j.phone()
        await j.set_password(page)
        await page.navigate(j.base + "/settings")
        await page.wait_for(
            "!document.getElementById('form').hidden && document.getElementById('list-printer') !== null", WAIT)
        boxes = "[...document.querySelectorAll('#list-printer .item')]"

        # A link to a section opens it, scrolled to: from another page, and from within this one.
        await page.navigate(j.base + "/")
        await page.navigate(j.base + "/settings#section-facade")
        for name in ("facade", "camera"):
            section = f"document.getElementById('section-{name}')"
            await page.evaluate(f"location.hash = 'section-{name}'")
            await page.wait_for(f"{section}?.open === true", WAIT)
            await page.wait_for(f"Math.abs({section}.getBoundingClientRect().top) < 60", WAIT)
        await page.navigate(j.base + "/settings")
        await page.wait_for(
            "!document.getElementById('form').hidden && document.getElementById('list-printer') !== null", WAIT)

        # A second printer: its fields, its access code, and a Shelly plug (only the Shelly's fields shown).
        await tap(page, button("Add a printer"))
        await page.wait_for(f"{boxes}.length === 2", WAIT)
        new = f"{boxes}[1]"
        assert await page.evaluate(f"{new}.querySelector('legend').textContent") == "New printer"
        for key, value in {"id": "loft", "model": "A1", "host": "127.0.0.1", "serial": "03919A000000123",
                           "access_code": "87654321"}.items():
            await replace_text(page, f"{new}.querySelector('input[data-key={key}]')", value)
        plug = f"{new}.querySelector('fieldset.subtable')"
        assert await page.evaluate(shown_keys(plug)) == ["kind"]
        await choose(page, f"{plug}.querySelector('select[data-key=kind]')", "shelly2")
        shown = await page.evaluate(shown_keys(plug))
        assert "channel" in shown and "password" in shown and "username" not in shown and "token" not in shown
        await replace_text(page, f"{plug}.querySelector('input[data-key=address]')", "127.0.0.1:9")
        await replace_text(page, f"{plug}.querySelector('input[data-key=password]')", "shelly-secret-7")
        status = await save(page)
        assert status.startswith("Saved.") and "printer loft added" in status, status
        saved = tomlkit.parse(j.config_path.read_text()).unwrap()["printer"]
        assert [p["id"] for p in saved] == ["garage", "loft"]
        assert saved[1]["access_code"] == "87654321"
        assert saved[1]["plug"] == {"kind": "shelly2", "address": "127.0.0.1:9", "password": "shelly-secret-7"}
        await page.wait_for(f"{boxes}.length === 2 && {new}.querySelector('legend').textContent === 'loft'", WAIT)
        html = await page.evaluate("document.documentElement.outerHTML")
        assert "87654321" not in html and "shelly-secret-7" not in html

        # Its plug removed ("No smart plug"), then the printer itself: each leaves the file with its secrets.
        await choose(page, f"{plug}.querySelector('select[data-key=kind]')", "")
        assert (await save(page)).startswith("Saved.")
        assert "plug" not in tomlkit.parse(j.config_path.read_text()).unwrap()["printer"][1]
        assert "shelly-secret-7" not in j.config_path.read_text()
        await page.wait_for(f"{boxes}.length === 2 && {new}.querySelector('legend').textContent === 'loft'", WAIT)
        await tap(page, button("Remove", new))
        assert await page.evaluate(f"{boxes}.length") == 1
        status = await save(page)
        assert status.startswith("Saved.") and "printer loft removed" in status, status
        assert [p["id"] for p in tomlkit.parse(j.config_path.read_text()).unwrap()["printer"]] == ["garage"]
        assert "87654321" not in j.config_path.read_text()
        assert page.exceptions == []
