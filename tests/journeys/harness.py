"""The journey harness: the real service (from a real config file) against the simulated printer, and a phone-sized
headless Chromium tab, so a journey test walks a flow as a person does and asserts what that person sees.

    async def test_something(tmp_path: Path) -> None:
        async with journey(tmp_path) as j:
            page = await j.phone()
            await j.set_password(page)
            j.sim.printer.start_print("bracket", layers=40, minutes=120)
            await page.wait_for(j.card("[data-field=state]") + "?.textContent.includes('Printing')", 20)

``extra`` is TOML appended to the file (e.g. ``[[notify]]`` tables), ``printer_extra`` goes into the
``[[printer]]`` table (e.g. ``stale_after_s = 1``), ``plug`` into its ``[printer.plug]`` table. With
``sim_plug=True`` a simulated Tasmota plug powers the simulated printer (``j.sim_plug``, as in ``bambupi demo``);
``{plug_url}`` in ``plug`` is its address. With ``ftps=True`` the simulator serves each job's 3MF over FTPS and
the printer's ``ftps_port`` points there (the card's grams). The service can be
stopped and started again on the same port (``await j.restart_service()``), as a box reboot or update would.
Waits poll what the page shows (state), never a fixed sleep; their limits are generous so a busy CPU only slows them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from bambupi.config import load_config
from bambupi.service import Running, Service
from bambupi.sim.plug import SimulatedPlug
from bambupi.sim.simulator import Simulator
from tests.browser import Browser, Page, chromium, require_chromium

SERIAL = "01P00A000000777"
CODE = "31415926"
PASSWORD = "correct horse battery"
PRINTER = "garage"
PHONE = (390, 844)
# Only bounds a hang: setting a password or logging in (a slow password hash) under the whole suite took > 15 s once.
HANG_S = 60

CONFIG = """\
# a journey's box
[web]
listen = "127.0.0.1:{port}"

[[printer]]
id = "{printer}"
name = "Garage P1S"
model = "{model}"
host = "127.0.0.1"
serial = "{serial}"
access_code = "{code}"
mqtt_port = {mqtt_port}
reconnect_max_s = 0.5
{printer_extra}
{plug}
[storage]
path = "{folder}/bambupi.sqlite3"

{extra}
"""


@dataclass
class Journey:
    sim: Simulator
    browser: Browser
    config_path: Path
    folder: Path
    nursery: trio.Nursery
    running: Running | None = None
    port: int = 0
    _service_scope: trio.CancelScope | None = field(default=None, repr=False)
    sim_plug: SimulatedPlug | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def card(inner: str = "") -> str:
        """A JS expression for the printer's card on the dashboard (or an element inside it)."""
        selector = f'article[data-printer="{PRINTER}"]'
        if inner:
            return f"document.querySelector({selector!r})?.querySelector({inner!r})"
        return f"document.querySelector({selector!r})"

    async def phone(self) -> Page:
        return await self.browser.new_page(width=PHONE[0], height=PHONE[1])

    async def start_service(self) -> Running:
        """Read the config file as `bambupi run -c` does and start the service on the journey's port."""
        config, problems = load_config(self.config_path)
        assert not [p for p in problems if p.level == "error"], problems
        scope = trio.CancelScope()
        self._service_scope = scope

        async def serve(*, task_status: trio.TaskStatus[Running]) -> None:
            with scope:
                await Service(config, storage_folder=self.folder).run(task_status=task_status)

        self.running = await self.nursery.start(serve)
        self.port = self.running.port
        return self.running

    async def stop_service(self) -> None:
        assert self._service_scope is not None
        self._service_scope.cancel()
        self._service_scope = None
        self.running = None
        await trio.sleep(0)

    async def restart_service(self) -> Running:
        await self.stop_service()
        # The same port, as after a reboot: rewrite the listen address to the port the first start bound.
        text = self.config_path.read_text()
        self.config_path.write_text(text.replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{self.port}"'))
        with trio.fail_after(30):
            while True:
                try:
                    return await self.start_service()
                except OSError:  # the old socket is still closing
                    await trio.sleep(0.1)

    async def set_password(self, page: Page, password: str = PASSWORD) -> None:
        """The first visit: the login page offers to set the owner's password; lands on the dashboard."""
        await page.navigate(self.base + "/login")
        await page.wait_for("document.getElementById('submit')?.textContent === 'Set password'", HANG_S)
        await submit_password(page, password)
        await page.wait_for(LANDED, HANG_S)

    async def log_in(self, page: Page, password: str = PASSWORD) -> None:
        await page.navigate(self.base + "/login")
        await page.wait_for("document.getElementById('submit') != null", HANG_S)
        await submit_password(page, password)
        await page.wait_for(LANDED, HANG_S)


# On the dashboard with its document parsed (right after the URL changes the new page may have no body yet).
LANDED = "location.pathname === '/' && document.readyState === 'complete'"


async def submit_password(page: Page, password: str) -> None:
    await page.evaluate(
        f"document.getElementById('password').value = {password!r};"
        "document.getElementById('form').requestSubmit();"
    )


@asynccontextmanager
async def journey(
    tmp_path: Path,
    *,
    model: str = "P1S",
    scenario: str = "idle",
    time_scale: float = 100,
    camera: bool = False,
    rtsps: bool = False,
    printer_extra: str = "",
    plug: str = "",
    extra: str = "",
    sim_plug: bool = False,
    ftps: bool = False,
) -> AsyncIterator[Journey]:
    """The simulated printer, the service from a config file, and Chromium; all stopped at the end."""
    require_chromium()
    async with trio.open_nursery() as nursery:
        sim = Simulator(
            model, SERIAL, CODE, scenario=scenario, time_scale=time_scale, camera_port=0 if camera else None,
            ftps_port=0 if ftps else None, rtsps_port=0 if rtsps else None,
        )
        await nursery.start(sim.run)
        plug_server: SimulatedPlug | None = await nursery.start(SimulatedPlug(sim.printer).run) if sim_plug else None
        if plug_server is not None:
            plug = plug.replace("{plug_url}", plug_server.url)
        path = tmp_path / "bambupi.toml"
        path.write_text(
            CONFIG.format(
                port=0, printer=PRINTER, model=model, serial=SERIAL, code=CODE, mqtt_port=sim.mqtt_port,
                printer_extra=printer_extra
                + (f"\ncamera_port = {sim.rtsps_port if rtsps else sim.camera_port}" if camera or rtsps
                   else "\ncamera = \"off\"")
                + (f"\nftps_port = {sim.ftps_port}" if ftps else ""),
                plug=plug, folder=tmp_path, extra=extra,
            )
        )
        async with chromium(tmp_path / "profile") as browser:
            j = Journey(sim=sim, browser=browser, config_path=path, folder=tmp_path, nursery=nursery,
                        sim_plug=plug_server)
            running = await j.start_service()
            # The first report only sets the baseline (nothing in it is "new"): a journey starts once it arrived,
            # so what the test makes the printer do next is news, as it would be for a person.
            with trio.fail_after(60):
                while running.hub.printer(PRINTER)["connection"] != "online":
                    await trio.sleep(0.02)
            yield j
        nursery.cancel_scope.cancel()


async def tap(page: Page, element: str) -> None:
    """A finger's tap on ``element`` (a JS expression): scrolled into view, then pressed and released there. A page
    wider than the phone is shown zoomed out: the tap lands where the element is on the screen."""
    box = await page.evaluate(
        f"(() => {{ const e = {element}; e.scrollIntoView({{block: 'center'}});"
        " const r = e.getBoundingClientRect(), v = visualViewport;"
        " return [(r.x + r.width / 2 - v.offsetLeft) * v.scale, (r.y + r.height / 2 - v.offsetTop) * v.scale]; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        await page.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
