"""Journey: the box dims at night and sleeps while the printer is switched off, and the page's virtual panel shows it.

A phone-sized Chromium on the dashboard of the real service (``[panel]`` virtual, as in ``bambupi demo``) against the
simulated printer over MQTT/TLS, powered by a simulated Tasmota plug. Quiet hours all day: the panel's picture is
drawn dim and the page says "night: dimmed". The owner switches the plug off: the box goes to sleep (the picture
black, "asleep (printers off)"), not an endless "offline" blink. The plug on again: the printer reports and the box
wakes, dimmed as the night asks.
"""

from __future__ import annotations

from pathlib import Path

from tests.journeys.harness import HANG_S, journey

PLUG = """
[printer.plug]
kind = "tasmota"
address = "{plug_url}"
"""
EXTRA = """
[panel]
oled = "virtual"
gpio = "virtual"

[alerts]
quiet_hours = "00:00-23:59"

[power]
sample_interval_s = 0.2
"""
WORDS = "(document.querySelector('#panel .leds')?.textContent || '')"
# The brightest pixel of the panel's picture as the page shows it (0 black .. 255 white), read through a canvas.
BRIGHTEST = """(() => {
  const img = document.querySelector('#panel img');
  if (!img || !img.complete || !img.naturalWidth) return -1;
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let most = 0;
  for (let i = 0; i < data.length; i += 4) most = Math.max(most, data[i]);
  return most;
})()"""


async def test_the_page_shows_the_box_dimmed_at_night_and_asleep_while_the_printer_is_off(tmp_path: Path) -> None:
    async with journey(tmp_path, sim_plug=True, plug=PLUG, extra=EXTRA) as j:
        assert j.sim_plug is not None and j.running is not None
        page = await j.phone()
        await j.set_password(page)  # a new box asks for its password first, then shows the dashboard
        await page.wait_for(f"{WORDS}.includes('night: dimmed')", HANG_S)
        # Lit, but as dim as the screen: the night contrast (1 of 255) is drawn grey, not white.
        await page.wait_for(f"{BRIGHTEST} > 0 && {BRIGHTEST} < 128", HANG_S)

        j.sim_plug.switch(False)  # the owner switches the printer off for the night
        await page.wait_for(f"{WORDS}.includes('asleep (printers off)')", HANG_S)
        await page.wait_for(f"{BRIGHTEST} === 0", HANG_S)  # the screen is off
        assert "night: dimmed" not in await page.evaluate(WORDS)
        panel = j.running.panel
        assert panel is not None and panel.screen.on is False
        assert panel.factory is not None and all(panel.factory.pin(pin).state == 0 for pin in (17, 27, 22))

        j.sim_plug.switch(True)  # morning: the printer boots and reports
        await page.wait_for(f"{WORDS}.includes('night: dimmed')", HANG_S)
        await page.wait_for(f"{BRIGHTEST} > 0", HANG_S)
        assert "asleep" not in await page.evaluate(WORDS)
        assert page.exceptions == []
