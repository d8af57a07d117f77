"""The owner turns the printer facade on from a phone (issue 18, item 1): the settings page's [facade] box, a code of
the facade's own, Save, and the page says where the facade serves and how many apps use it (from /healthz, under
the box). An app on paho-mqtt then reads the printer through the box with that code. The printer's own code is
refused as the facade's, on the page, with the key it belongs to.
"""

from __future__ import annotations

import json
import queue
import re
import ssl
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import trio
from paho.mqtt.enums import CallbackAPIVersion

from tests.journeys.harness import CODE, SERIAL, journey, tap
from tests.journeys.test_settings_form_journey import open_section
from tests.journeys.test_settings_secrets_journey import replace_text, save

WAIT = 30  # generous: a busy CPU only slows the waits, it never fails them
FACADE_CODE = "app5c0de"
STATUS = "document.getElementById('facade-status').textContent"
# Loopback and free ports for the test; a box's defaults are 0.0.0.0, 8883 and 6000.
EXTRA = '[facade]\nhost = "127.0.0.1"\nmqtt_port = 0\ncamera_port = 0\n'


def field(key: str) -> str:
    return f"document.getElementById('facade.{key}')"


async def test_the_owner_turns_the_facade_on_and_an_app_reads_the_printer_through_it(tmp_path: Path) -> None:
    async with journey(tmp_path, extra=EXTRA) as j:
        page = await j.phone()
        await j.set_password(page)
        await page.navigate(j.base + "/settings")
        await page.wait_for("!document.getElementById('form').hidden", WAIT)
        await page.wait_for(f"{STATUS} === 'Printer facade: off'", WAIT)

        # The printer's code will not do: the facade must have its own.
        await open_section(page, "facade")  # its section, folded until tapped
        await tap(page, field("enabled"))  # the switch: on
        assert await page.evaluate(f"{field('enabled')}.checked")
        await replace_text(page, field("access_code"), CODE)
        assert await save(page) == "the settings have problems; nothing was saved"
        error = await page.wait_for(
            "document.querySelector('[data-error-for=\"facade.access_code\"]').textContent", WAIT
        )
        assert "must not be a printer's access code" in error and CODE not in error

        await replace_text(page, field("access_code"), FACADE_CODE)
        status = await save(page)
        assert status.startswith("Saved."), status
        shown = await page.wait_for(f"{STATUS}.includes('MQTT on port') && {STATUS}", WAIT)
        found = re.search(r"MQTT on port (\d+), 0 app\(s\); garage's camera on (\d+); apps can only watch", shown)
        assert found, shown
        assert FACADE_CODE not in await page.evaluate("document.documentElement.outerHTML")

        # An app (paho, as ha-bambulab uses) logs in with the facade's code and reads the printer's state.
        reports: queue.Queue[dict[str, Any]] = queue.Queue()
        app = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="journey-app", protocol=mqtt.MQTTv311)
        app.username_pw_set("bblp", FACADE_CODE)
        app.tls_set(cert_reqs=ssl.CERT_NONE)
        app.tls_insecure_set(True)

        def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
            client.subscribe(f"device/{SERIAL}/report")
            client.publish(f"device/{SERIAL}/request", json.dumps({"pushing": {"command": "pushall"}}))

        app.on_connect = on_connect
        app.on_message = lambda c, u, message: reports.put(json.loads(message.payload))
        await trio.to_thread.run_sync(app.connect, "127.0.0.1", int(found.group(1)))
        app.loop_start()
        try:
            with trio.fail_after(WAIT):
                while True:
                    try:
                        message = reports.get_nowait()
                    except queue.Empty:
                        await trio.sleep(0.05)
                        continue
                    if message.get("print", {}).get("msg") == 0:
                        break
            assert message["print"]["gcode_state"] == "IDLE"
            # The page follows: one app now.
            await page.wait_for(f"{STATUS}.includes(', 1 app(s)')", WAIT)
        finally:
            app.loop_stop()
            app.disconnect()
        assert j.sim.broker.connections == 1  # the printer saw the box alone
