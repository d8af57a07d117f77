"""The owner taps "Send a test notification" again and again for a service that hangs (issue 14, item 5): the page
says the test is queued, the box keeps answering (the dashboard opens in another tab), and when the service answers
at last, the page says the test was sent and lists it among the deliveries.
"""

from __future__ import annotations

from pathlib import Path

import trio

from tests.journeys.harness import journey, tap
from tests.misbehaving_server import Misbehaving
from tests.support import wait_for

WAIT = 20  # generous: a busy CPU only slows the waits, it never fails them


async def test_test_clicks_for_a_hanging_service_are_queued_and_the_box_keeps_answering(tmp_path: Path) -> None:
    async with trio.open_nursery() as servers:
        hanging = await servers.start(Misbehaving("hang").run)
        channel = f'[[notify]]\nname = "hook"\nkind = "webhook"\nurl = "{hanging.url}/hook"\n'
        async with journey(tmp_path, extra=channel) as j:
            page = await j.phone()
            await j.set_password(page)
            await page.navigate(j.base + "/settings")
            await page.wait_for("!document.getElementById('form').hidden", WAIT)
            button = ("[...document.querySelectorAll('#list-notify .item button')]"
                      ".find((b) => b.textContent === 'Send a test notification')")
            for _ in range(12):  # more taps than the box has web threads
                await tap(page, button)
            await page.wait_for("document.getElementById('status').textContent === 'hook: test queued…'", WAIT)
            await wait_for(lambda: hanging.holding == 1, WAIT, what="the test held at the service")

            # While the service holds the test: the dashboard opens and shows the printer.
            other = await j.phone()
            await other.navigate(j.base + "/")
            await other.wait_for(j.card("[data-field=state]") + "?.textContent.length > 0", WAIT)
            assert hanging.requests == 1, "twelve taps, one test on its way"

            hanging.release.set()
            await page.wait_for("document.getElementById('status').textContent === 'hook: test sent'", WAIT)
            rows = await page.wait_for(
                "(() => { const rows = [...document.querySelectorAll('#deliveries tbody tr')]"
                ".map((r) => [...r.cells].map((c) => c.textContent));"
                " return rows.length ? rows : null; })()", WAIT,
            )
            assert [(row[1], row[3]) for row in rows] == [("hook", "sent: HTTP 200")]
        servers.cancel_scope.cancel()
