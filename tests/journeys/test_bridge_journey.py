"""The owner turns on the home broker's bridge on a phone (issue 18, item 2): the settings page's [bridge] box, the
broker's password typed once, Save, and the page says the box is connected (read from /healthz, shown under the
[bridge] box). A real mosquitto with TLS stands in for Home Assistant's broker; paho-mqtt, as Home Assistant, finds
the printer's state and its discovery configs there. A new broker address asks for the password again, on the page.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import trio
from paho.mqtt.enums import CallbackAPIVersion

from tests.journeys.harness import journey, tap
from tests.journeys.test_settings_form_journey import open_section
from tests.journeys.test_settings_secrets_journey import replace_text, save
from tests.mosquitto import Mosquitto

WAIT = 30  # generous: a busy CPU only slows the waits, it never fails them
BOX_PASSWORD = "broker pass 1"
STATUS = "document.getElementById('bridge-status').textContent"


def field(key: str) -> str:
    return f"document.getElementById('bridge.{key}')"


async def test_the_owner_turns_the_bridge_on_and_sees_it_connected(tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = Mosquitto(folder, {"box": BOX_PASSWORD, "ha": "ha pass"})
    broker.ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    broker.start()
    extra = (f'[bridge]\nhost = "127.0.0.1"\nport = {broker.port}\ntls = true\nca = "{folder / "ca.pem"}"\n'
             'username = "box"\n')
    try:
        async with journey(tmp_path, extra=extra) as j:
            page = await j.phone()
            await j.set_password(page)
            await page.navigate(j.base + "/settings")
            await page.wait_for("!document.getElementById('form').hidden", WAIT)
            await page.wait_for(f"{STATUS}.includes('off')", WAIT)

            await open_section(page, "bridge")  # its section, folded until tapped
            await tap(page, field("enabled"))  # the switch: on
            assert await page.evaluate(f"{field('enabled')}.checked")
            await replace_text(page, field("password"), BOX_PASSWORD)
            status = await save(page)
            assert status.startswith("Saved.") and "home broker: connecting to 127.0.0.1" in status, status
            shown = await page.wait_for(f"{STATUS}.includes('connected to broker') && {STATUS}", WAIT)
            assert shown == f"Home broker: connected (connected to broker 127.0.0.1:{broker.port})"
            assert BOX_PASSWORD not in await page.evaluate("document.documentElement.outerHTML")

            # Home Assistant's side finds the printer there.
            seen: dict[str, bytes] = {}
            lock = threading.Lock()

            def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
                with lock:
                    seen[message.topic] = bytes(message.payload)

            ha = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha-journey")
            ha.username_pw_set("ha", "ha pass")
            ha.tls_set(ca_certs=str(folder / "ca.pem"))
            ha.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
            ha.on_message = on_message
            await trio.to_thread.run_sync(lambda: ha.connect("127.0.0.1", broker.port))
            ha.loop_start()
            try:
                with trio.fail_after(WAIT):
                    while "bambupi/garage/state" not in seen or not any(t.startswith("homeassistant/") for t in seen):
                        await trio.sleep(0.05)
                with lock:
                    assert json.loads(seen["bambupi/garage/state"])["connection"] == "online"
            finally:
                ha.loop_stop()
                ha.disconnect()

            # Another broker address: the page asks for the password again before anything is saved.
            await replace_text(page, field("host"), "127.0.0.2")
            assert await page.evaluate(f"{field('password')}.placeholder") == "type it again: where it is sent changed"
            assert await save(page) == "the settings have problems; nothing was saved"
            error = await page.wait_for(
                "document.querySelector('[data-error-for=\"bridge.password\"]').textContent", WAIT
            )
            assert error == "type the password again: the home broker's address changed"
            await tap(page, "document.querySelector('a[href=\"/\"]')")  # back to the dashboard, still connected
            await page.wait_for("location.pathname === '/'", WAIT)
            assert j.running is not None and j.running.bridge.state == "connected"
    finally:
        broker.stop()
