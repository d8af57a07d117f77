"""Users and roles on a phone (issue 19): the owner invites alice as an operator and bob as a viewer from /users,
each opens the link in their own browser and chooses a password; alice pauses the print but the settings page tells
her it is the owner's; bob watches and has no controls (a pause he forges is refused); the link works once; the
MQTT log and the job's timeline name alice as who paused; alice signs out everywhere from /sessions; the owner
makes bob an operator (his controls appear) and then removes him (signed out at once).

Each person is a Chromium of their own (their own cookies), at 390x844, against the real service and the simulator.
"""

from __future__ import annotations

from pathlib import Path

from tests.browser import ARTIFACTS, Page, chromium
from tests.journeys.harness import PHONE, Journey, journey, tap
from tests.journeys.look import DESKTOP, NARROW, axe, axe_source, overflow, set_size, small_targets

WAIT = 30  # generous: a busy CPU only slows the waits, it never fails them


def text(j: Journey, field: str) -> str:
    return f"({j.card(f'[data-field={field!r}]')}?.textContent ?? '')"


def command(j: Journey, name: str) -> str:
    return j.card(f'button[data-command="{name}"]')


async def fits(page: Page, what: str) -> None:
    """The page as it is now (filled by its script) at phone size, at 320 px and at desktop size: nothing wider
    than the screen, every tap target 44 px, no serious axe-core violation (tests/journeys/look.py)."""
    found = [f"axe: {p}" for p in await axe(page, axe_source())]
    for width, height, mobile in ((PHONE[0], PHONE[1], True), (NARROW, 640, True), (*DESKTOP, False)):
        await set_size(page, width, height, mobile=mobile)
        found += [f"{width} px overflow: {p}" for p in await overflow(page, width)]
        found += [f"{width} px small target: {p}" for p in await small_targets(page)]
    await set_size(page, *PHONE, mobile=True)
    assert found == [], (what, found)


async def type_into(page: Page, element_id: str, value: str) -> None:
    await page.evaluate(f"document.getElementById({element_id!r}).value = {value!r}")


async def invite(page: Page, j: Journey, name: str, role: str) -> str:
    """The owner invites ``name`` on /users; returns the link the page shows once."""
    await page.navigate(j.base + "/users")
    await page.wait_for("document.querySelector('#people li[data-user=\"owner\"]') != null", WAIT)
    await type_into(page, "invite-name", name)
    await page.evaluate(f"document.getElementById('invite-role').value = {role!r}")
    await tap(page, "document.getElementById('invite-submit')")
    await page.wait_for(
        f"!document.getElementById('shown').hidden && document.getElementById('shown-name').textContent"
        f" === '{name} ({role})'", WAIT,
    )
    await page.wait_for(f"document.querySelector('#invites li[data-invite=\"{name}\"]') != null", WAIT)
    await page.screenshot(ARTIFACTS / f"journey-users-invite-{name}-390.png")
    await fits(page, "/users with an invitation shown")
    link: str = await page.evaluate("document.getElementById('shown-link').href")
    code: str = await page.evaluate("document.getElementById('shown-code').textContent")
    assert link == f"{j.base}/invite#code={code}"
    return link


async def accept(page: Page, link: str, name: str, role: str, password: str) -> None:
    await page.navigate(link)
    await page.wait_for(f"document.getElementById('title').textContent === 'Welcome, {name}'", WAIT)
    assert role in await page.evaluate("document.getElementById('hint').textContent")
    # The code is taken out of the address bar once read.
    assert "code" not in await page.evaluate("location.href")
    await page.screenshot(ARTIFACTS / f"journey-users-accept-{name}-390.png")
    await fits(page, "/invite")
    await type_into(page, "password", password)
    await type_into(page, "again", password)
    await tap(page, "document.getElementById('submit')")
    await page.wait_for("location.pathname === '/'", WAIT)


async def test_an_operator_pauses_cannot_open_settings_and_is_named_in_the_log(tmp_path: Path) -> None:
    async with journey(tmp_path) as j:
        owner = await j.phone()
        await j.set_password(owner)
        link = await invite(owner, j, "alice", "operator")
        async with chromium(tmp_path / "alice-profile") as alice_browser:
            alice = await alice_browser.new_page(width=PHONE[0], height=PHONE[1])
            await accept(alice, link, "alice", "operator", "alice's own secret")

            j.sim.printer.start_print("bracket", layers=40, minutes=600)
            await alice.wait_for(f"{text(j, 'state')}.includes('Printing')", WAIT)
            await alice.wait_for(f"{command(j, 'pause')} && !{command(j, 'pause')}.disabled", WAIT)
            # The box's button on the page is hers too (a viewer's is hidden: the next journey).
            await alice.wait_for("[...document.querySelectorAll('.panel-button')].some((b) => !b.hidden)", WAIT)
            await tap(alice, command(j, "pause"))
            await alice.wait_for(f"{text(j, 'state')}.includes('Paused')", WAIT)
            assert j.sim.printer.gcode_state == "PAUSE"

            # The settings are the owner's: the page says so, and who she is.
            await alice.navigate(j.base + "/settings")
            await alice.wait_for("document.getElementById('refusal') != null", WAIT)
            assert await alice.evaluate("document.getElementById('refusal').textContent") == (
                "This needs the owner's login: alice is an operator"
            )
            assert await alice.evaluate("document.getElementById('form')") is None  # no settings form at all
            await alice.screenshot(ARTIFACTS / "journey-users-operator-settings-390.png")
            await fits(alice, "the settings refused")

            # The link worked once: opened again (here in alice's browser) it says why not.
            await alice.navigate(link)
            await alice.wait_for("document.getElementById('message').textContent.includes('used')", WAIT)
            assert await alice.evaluate("document.getElementById('message').textContent") == (
                "this invitation is not valid: it was used, withdrawn or has expired"
            )

            # The owner reads who paused: the MQTT log's outgoing pause and the job's timeline.
            await owner.navigate(j.base + "/printers/garage/mqtt")
            await owner.wait_for(
                "[...document.querySelectorAll('li[data-seq]')].some((li) => li.textContent.includes('pause')"
                " && li.querySelector('.by')?.textContent === 'by alice (the page)')", WAIT,
            )
            await owner.navigate(j.base + "/history")
            await owner.wait_for("document.querySelector('.job-row a') != null", WAIT)
            await owner.evaluate("location.href = document.querySelector('.job-row a').href")
            await owner.wait_for("document.querySelector('#timeline li.ev-paused') != null", WAIT)
            assert "Paused — by alice (the page)" in await owner.evaluate(
                "document.querySelector('#timeline li.ev-paused').textContent"
            )

            # Alice signs out everywhere from her sessions page (her name in the header) and lands on the login.
            await alice.navigate(j.base + "/")
            await alice.wait_for("!document.getElementById('whoami').hidden", WAIT)
            assert await alice.evaluate("document.getElementById('whoami').innerText.trim()") == "alice"
            await tap(alice, "document.getElementById('whoami')")
            await alice.wait_for("location.pathname === '/sessions'", WAIT)
            await alice.wait_for("document.querySelector('#sessions li[data-current=\"true\"]') != null", WAIT)
            assert await alice.evaluate("document.getElementById('who').textContent") == (
                "Signed in as alice (operator)."
            )
            await alice.screenshot(ARTIFACTS / "journey-users-sessions-390.png")
            await fits(alice, "/sessions")
            await tap(alice, "document.getElementById('end-all')")
            await alice.wait_for("location.pathname === '/login'", WAIT)
            assert await alice.evaluate("fetch('/api/sessions').then((r) => r.status)") == 401
            # She logs in again with her name, submitting before the page has asked the box about the session
            # (as a password manager may): the page asks first, then logs her in.
            await alice.wait_for("!document.getElementById('form').hidden", WAIT)
            await type_into(alice, "name", "alice")
            await type_into(alice, "password", "alice's own secret")
            await alice.evaluate("info = null; document.getElementById('form').requestSubmit()")
            await alice.wait_for("location.pathname === '/' && document.readyState === 'complete'", WAIT)
            assert (await alice.evaluate("fetch('/api/session').then((r) => r.json())"))["user"] == "alice"
            assert alice.exceptions == [] and owner.exceptions == []


async def test_a_viewer_watches_without_controls_and_cannot_pause(tmp_path: Path) -> None:
    async with journey(tmp_path) as j:
        owner = await j.phone()
        await j.set_password(owner)
        link = await invite(owner, j, "bob", "viewer")
        async with chromium(tmp_path / "bob-profile") as bob_browser:
            bob = await bob_browser.new_page(width=PHONE[0], height=PHONE[1])
            await accept(bob, link, "bob", "viewer", "bob watches only")
            j.sim.printer.start_print("bracket", layers=40, minutes=600)
            await bob.wait_for(f"{text(j, 'state')}.includes('Printing')", WAIT)
            await bob.wait_for(j.card(".viewer-only") + " != null", WAIT)
            assert await bob.evaluate(f"{command(j, 'pause')} == null")
            buttons = "[...document.querySelectorAll('.panel-button')]"
            assert await bob.evaluate(f"{buttons}.length > 0 && {buttons}.every((b) => b.hidden)")
            await bob.screenshot(ARTIFACTS / "journey-users-viewer-390.png")
            # A pause forged from his page (his own session and token) is refused with the reason.
            answer = await bob.evaluate(
                "fetch('/api/session').then((r) => r.json()).then((s) => fetch('/api/printers/garage/commands',"
                " {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf},"
                " body: JSON.stringify({command: 'pause'})})).then(async (r) => [r.status, (await r.json()).error])"
            )
            assert answer == [403, "this needs an operator's or the owner's login: bob is a viewer"]
            assert j.sim.printer.gcode_state == "RUNNING"
            assert "Printing" in await bob.evaluate(text(j, "state"))

            # The owner makes bob an operator on /users: his next page has the controls, no new login needed.
            await owner.navigate(j.base + "/users")
            role = "document.querySelector('#people li[data-user=\"bob\"] select')"
            await owner.wait_for(f"{role}?.value === 'viewer'", WAIT)
            await owner.evaluate(f"{role}.value = 'operator'; {role}.dispatchEvent(new Event('change'))")
            await owner.wait_for("document.getElementById('message').textContent === 'bob is now operator.'", WAIT)
            await bob.navigate(j.base + "/")
            await bob.wait_for(f"{command(j, 'pause')} && !{command(j, 'pause')}.disabled", WAIT)
            assert await bob.evaluate(j.card(".viewer-only") + " == null")

            # The owner removes bob: his next look at his sessions finds him signed out.
            await owner.navigate(j.base + "/users")
            await owner.wait_for("document.querySelector('#people li[data-user=\"bob\"] .remove') != null", WAIT)
            await owner.evaluate("window.confirm = () => true")
            await tap(owner, "document.querySelector('#people li[data-user=\"bob\"] .remove')")
            await owner.wait_for("document.querySelector('#people li[data-user=\"bob\"]') == null", WAIT)
            await bob.navigate(j.base + "/sessions")
            await bob.wait_for("location.pathname === '/login'", WAIT)
            assert bob.exceptions == [] and owner.exceptions == []
