"""A printer removed while the box was off leaves Home Assistant too, and nobody else's device goes with it.

Removal in the settings while the bridge is connected clears the printer's retained topics (tests/test_bridge.py).
Removed while the box was off (the config file edited, a printer renamed, the settings saved while the broker was
down and the box restarted before it came back), nothing in the box's memory says the old device is on the broker:
its retained discovery configs, state and availability would leave a dead device in Home Assistant for good. The
bridge finds them among the retained configs by its own availability topic and clears them; another box's printer
(its own topic prefix) and other integrations' configs stay.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from bambupi.bridge.messages import Topics
from bambupi.config import load_config
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from tests.mosquitto import Mosquitto
from tests.support import CODE, SERIAL, wait_for
from tests.test_bridge import BOX_PASSWORD, BOX_USER, HA_PASSWORD, HA_USER, PREFIX, Subscriber, subscriber, write_config

OTHER_BOX = "homeassistant/sensor/bambupi_office/progress/config"  # another box's printer, prefix "shed"
OTHER_CONFIG = json.dumps({
    "availability": [{"topic": "shed/availability"}, {"topic": "shed/office/availability"}],
    "state_topic": "shed/office/state", "unique_id": "bambupi_01P00A000000555_progress", "name": "Progress",
})
ZIGBEE = "homeassistant/sensor/0x00158d0001/temperature/config"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Mosquitto(folder, {BOX_USER: BOX_PASSWORD, HA_USER: HA_PASSWORD})
    b.ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    b.start()
    yield b
    b.stop()


@asynccontextmanager
async def box_with(tmp_path: Path, broker: Mosquitto, sim: Simulator, printer_id: str) -> AsyncIterator[Running]:
    """The real service with the one printer called ``printer_id``; stopped (not said goodbye) at the end."""
    path = write_config(tmp_path, sim, broker)
    path.write_text(path.read_text().replace('id = "garage"', f'id = "{printer_id}"'))
    config, _ = load_config(path)
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        yield running
        nursery.cancel_scope.cancel()


def printer_configs(ha: Subscriber, printer_id: str) -> set[str]:
    return {t for t, p in ha.configs().items() if f"/bambupi_{printer_id}/" in t and p}


@pytest.mark.timeout(120)
async def test_a_printer_removed_while_the_box_was_off_leaves_home_assistant(tmp_path: Path, broker: Mosquitto) -> None:
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle", camera_port=0, time_scale=50)
        await nursery.start(sim.run)
        async with subscriber(broker) as ha:
            # Retained by the broker, as another box and another integration leave them.
            ha.client.publish(ZIGBEE, json.dumps({"state_topic": "zigbee2mqtt/sensor"}), qos=1, retain=True)
            ha.client.publish(OTHER_BOX, OTHER_CONFIG, qos=1, retain=True).wait_for_publish(10)

            async with box_with(tmp_path, broker, sim, "garage"):
                await wait_for(lambda: len(printer_configs(ha, "garage")) > 10, what="the garage's device")
                await wait_for(lambda: ha.get(f"{PREFIX}/garage/state") not in (None, b""), what="its state")
            old = printer_configs(ha, "garage")

            # The box again, its printer now called "workshop" (the config file edited while it was off).
            async with box_with(tmp_path, broker, sim, "workshop") as running:
                await wait_for(lambda: len(printer_configs(ha, "workshop")) == len(old), what="the workshop's device")
                await wait_for(lambda: all(ha.get(t) == b"" for t in old), what="the garage's configs removed")
                gone = [f"{PREFIX}/garage/state", f"{PREFIX}/garage/availability"]
                await wait_for(lambda: all(ha.get(t) == b"" for t in gone), what="the garage's state removed")
                assert running.bridge.state == "connected"
            # Another box's printer and another integration's device are none of this box's business.
            assert ha.json(OTHER_BOX) == json.loads(OTHER_CONFIG)
            assert ha.json(ZIGBEE) == {"state_topic": "zigbee2mqtt/sensor"}
        nursery.cancel_scope.cancel()


def test_only_this_box_s_configs_of_printers_it_no_longer_has_are_stale() -> None:
    topics = Topics("bambupi", "homeassistant")
    ours = json.dumps({"availability": [{"topic": "bambupi/availability"}, {"topic": "bambupi/old/availability"}]})
    config = "homeassistant/sensor/bambupi_old/progress/config"
    assert topics.stale_config(config, ours.encode(), {"garage"}) == "old"
    assert topics.stale_config(config, ours.encode(), {"old"}) is None  # still on the box
    assert topics.stale_config(config, b"", {"garage"}) is None  # already cleared
    assert topics.stale_config(config, OTHER_CONFIG.encode(), {"garage"}) is None  # another box's
    for junk in (b"not json", b"[]", b'{"availability": "bambupi/availability"}', b'{"availability": [1, "x"]}'):
        assert topics.stale_config(config, junk, {"garage"}) is None
    for topic in ("homeassistant/sensor/0x1234/progress/config", "homeassistant/sensor/bambupi_old/config",
                  "ha/sensor/bambupi_old/progress/config", "homeassistant/sensor/bambupi_old/progress/state"):
        assert topics.stale_config(topic, ours.encode(), {"garage"}) is None
