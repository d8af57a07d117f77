"""Two notification channels added on the settings page, one removed: the other still delivers, to its own URL and
signed with its own secret, and nothing goes to the removed one (issue 12, defect 2).

The receivers are real HTTP servers (tests/notify_services.py) that answer 401 to a request not signed with their
own secret; the test checks the HMAC itself as well.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from bambupi.config import WebConfig
from bambupi.notify.channels import SIGNATURE_HEADER
from bambupi.web.frontdoor import FrontDoor
from tests.browser import Page
from tests.journeys.harness import journey, tap
from tests.journeys.test_settings_form_journey import choose
from tests.notify_services import FakeServices
from tests.support import wait_for

SECRETS = {"alpha": "alpha-own-hmac-secret", "beta": "beta-own-hmac-secret"}
WAIT = 20  # generous: a busy CPU only slows the waits, it never fails them


def notify_boxes() -> str:
    return "[...document.querySelectorAll('#list-notify .item')]"


async def legends(page: Page) -> list[str]:
    return list(await page.evaluate(f"{notify_boxes()}.map((box) => box.querySelector('legend').textContent)"))


async def type_into(page: Page, element: str, text: str) -> None:
    await tap(page, element)
    await page.wait_for(f"document.activeElement === {element}", WAIT)
    await page.send("Input.insertText", text=text)


async def add_webhook(page: Page, name: str, url: str) -> None:
    count = len(await legends(page))
    await tap(page, "[...document.querySelectorAll('button')].find((b) => b.textContent === 'Add a channel')")
    await page.wait_for(f"{notify_boxes()}.length === {count + 1}", WAIT)
    box = f"{notify_boxes()}.at(-1)"
    await type_into(page, f"{box}.querySelector('input[data-key=name]')", name)
    # The service is a choice; choosing it shows that service's fields (a webhook's URL and signing secret).
    await choose(page, f"{box}.querySelector('select[data-key=kind]')", "webhook")
    for key, value in {"url": url, "secret": SECRETS[name]}.items():
        await type_into(page, f"{box}.querySelector('input[data-key={key}]')", value)


def reloaded(count: int) -> str:
    """The page shows ``count`` channels as read back from the box: each keeps a secret it no longer shows."""
    return (f"{notify_boxes()}.length === {count} && {notify_boxes()}.every((box) =>"
            " [...box.querySelectorAll('input[data-secret]')]"
            ".some((input) => input.placeholder === 'unchanged (type to replace)'))")


async def save(page: Page) -> str:
    """Tap Save; the status line once the answer is in (the page reloads the settings after a successful save)."""
    await page.evaluate("document.getElementById('status').textContent = ''")
    await tap(page, "document.querySelector('#form button[type=submit]')")
    return str(await page.wait_for("document.getElementById('status').textContent", WAIT))


async def test_a_removed_channel_takes_its_secret_with_it_and_the_other_still_delivers(tmp_path: Path) -> None:
    receiver = FakeServices()
    receiver.hook_secrets.update(SECRETS)
    async with journey(tmp_path) as j:
        port = await j.nursery.start(FrontDoor(receiver.app, WebConfig(host="127.0.0.1", port=0)).run)
        urls = {name: f"http://127.0.0.1:{port}/hooks/{name}" for name in SECRETS}
        page = await j.phone()
        await j.set_password(page)
        await page.navigate(j.base + "/settings")
        await page.wait_for("!document.getElementById('form').hidden", WAIT)
        assert await legends(page) == []

        # One channel, saved; then a second one, saved: the owner adds them one at a time.
        await add_webhook(page, "alpha", urls["alpha"])
        assert (await save(page)).startswith("Saved.")
        await page.wait_for(reloaded(1), WAIT)
        await add_webhook(page, "beta", urls["beta"])
        status = await save(page)
        assert status.startswith("Saved."), status
        await page.wait_for(reloaded(2), WAIT)
        assert await legends(page) == ["alpha", "beta"]
        # Secrets are never sent back to the page: each box says it keeps its own.
        shown = await page.evaluate("document.documentElement.outerHTML")
        assert not any(secret in shown for secret in [*SECRETS.values(), *urls.values()])
        placeholders = await page.evaluate(
            f"{notify_boxes()}.map((box) => [box.querySelector('input[data-key=secret]').value,"
            " box.querySelector('input[data-key=secret]').placeholder])"
        )
        assert placeholders == [["", "unchanged (type to replace)"]] * 2

        # The first one removed, saved.
        await tap(page, f"[...{notify_boxes()}[0].querySelectorAll('button')].find((b) => b.textContent === 'Remove')")
        assert await legends(page) == ["beta"]
        status = await save(page)
        assert status.startswith("Saved.") and "notification channels updated" in status, status
        await page.wait_for(reloaded(1), WAIT)
        assert await legends(page) == ["beta"]
        text = j.config_path.read_text()
        assert SECRETS["alpha"] not in text and urls["alpha"] not in text
        assert SECRETS["beta"] in text and urls["beta"] in text

        # A test notification from the survivor's own button: the person sees it sent, and in the deliveries list.
        await tap(page, f"[...{notify_boxes()}[0].querySelectorAll('button')]"
                        ".find((b) => b.textContent === 'Send a test notification')")
        await page.wait_for("document.getElementById('status').textContent === 'beta: test sent'", WAIT)
        rows = await page.wait_for(
            "(() => { const rows = [...document.querySelectorAll('#deliveries tbody tr')]"
            ".map((r) => [...r.cells].map((c) => c.textContent));"
            " return rows.length ? rows : null; })()", WAIT,
        )
        assert [(row[1], row[3]) for row in rows] == [("beta", "sent: HTTP 200")]  # the receiver accepted its signature

        # And a real event: a print finishes; the survivor tells of it.
        j.sim.printer.start_print("bracket", layers=3, minutes=1)
        await wait_for(lambda: any(json.loads(r.body)["event"] == "job_finished" for r in receiver.of("hooks/beta")),
                       WAIT, what="the finished print told to beta")

    delivered = receiver.of("hooks/beta")
    assert [r.path for r in delivered] == ["/hooks/beta"] * len(delivered) and len(delivered) >= 2
    for request in delivered:
        expected = "sha256=" + hmac.new(SECRETS["beta"].encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers[SIGNATURE_HEADER] == expected
    assert receiver.of("hooks/alpha") == []
    assert len(receiver.requests) == len(delivered)  # nothing anywhere else, unsigned or otherwise


TWO_CHANNELS = """\
[[notify]]
name = "alpha"
kind = "webhook"
url = "http://127.0.0.1:9/alpha"
secret = "alpha-own-hmac-secret"

[[notify]]
name = "beta"
kind = "ntfy"
url = "http://127.0.0.1:9"
topic = "beta-topic"
token = "tk_beta_own_token"
"""


async def test_a_channel_changed_in_the_file_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    async with journey(tmp_path, extra=TWO_CHANNELS) as j:
        page = await j.phone()
        await j.set_password(page)
        await page.navigate(j.base + "/settings")
        await page.wait_for(reloaded(2), WAIT)
        # While the page is open, the owner edits the file over SSH.
        edited = j.config_path.read_text().replace('"beta-topic"', '"beta-elsewhere"')
        j.config_path.write_text(edited)

        await tap(page, f"[...{notify_boxes()}[0].querySelectorAll('button')].find((b) => b.textContent === 'Remove')")
        # The file's version the page loaded is not the file's now: refused whole (issue 14, item 12).
        assert await save(page) == "the file changed since this page loaded it; reload"
        assert j.config_path.read_text() == edited

        # Reloaded, the page shows the file as it is now, and the same change goes through.
        await page.navigate(j.base + "/settings")
        await page.wait_for(reloaded(2), WAIT)
        assert await page.evaluate(f"{notify_boxes()}[1].querySelector('input[data-key=topic]').value") == (
            "beta-elsewhere"
        )
        await tap(page, f"[...{notify_boxes()}[0].querySelectorAll('button')].find((b) => b.textContent === 'Remove')")
        assert (await save(page)).startswith("Saved.")
        await page.wait_for(reloaded(1), WAIT)
        assert await legends(page) == ["beta"]
        text = j.config_path.read_text()
        assert '"beta-elsewhere"' in text and "tk_beta_own_token" in text and "alpha-own-hmac-secret" not in text
