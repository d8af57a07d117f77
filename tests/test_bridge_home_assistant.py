"""Home Assistant itself reading the bridge's discovery configs, availability and state (tests/home_assistant/):
optional, because Home Assistant needs a newer Python than the box. Point ``BAMBUPI_HA_PYTHON`` at a Python (3.13+)
with ``pip install pytest-homeassistant-custom-component`` (it brings Home Assistant) to run it; without it the test
is skipped and tests/ha_discovery_schema.py's check of the documented schema stands in.

The payloads are made here by bambupi's own code from a real capture (an H2D with a door, a chamber sensor, an AMS
and an AMS HT), with control allowed, and handed to Home Assistant's MQTT integration in a subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from bambupi.bridge.messages import Printer, discovery_configs, encode, event_payload, state_document
from bambupi.config import BridgeConfig
from bambupi.state_hub import StateHub
from tests.capture_corpus import capture
from tests.support import printer_config

HERE = Path(__file__).resolve().parent / "home_assistant"
HA_PYTHON = os.environ.get("BAMBUPI_HA_PYTHON")


@pytest.mark.timeout(600)
@pytest.mark.skipif(not HA_PYTHON, reason="BAMBUPI_HA_PYTHON (a Python with Home Assistant) is not set")
async def test_home_assistant_itself_makes_the_printer_from_the_bridge(tmp_path: Path) -> None:
    item = capture("h2d-ams-ht")
    hub = StateHub([printer_config("p", model=item.model)])
    for message in item.messages:
        hub.apply_message("p", json.dumps(message).encode())
    document = state_document(hub.printer("p"))
    settings = dataclasses.replace(BridgeConfig(enabled=True, host="broker"), allow_control=True)
    printer = Printer("p", "0948AB000000001", "Garage", item.model, True)
    raw = discovery_configs(printer, document, settings, box_url="http://bambupi.local/")
    data = {
        "model": item.model,
        "document": document,
        "configs": {topic: json.loads(payload) for topic, payload in raw.items() if payload},
        "retained": {
            "bambupi/availability": "online", "bambupi/p/availability": "online",
            "bambupi/p/state": encode(document).decode(),
        },
        "event": event_payload({"kind": "job_finished", "printer": "p", "job": "Benchy", "at": 1.0}).decode(),
    }
    assert document["door"] in ("open", "closed") and document["trays"]  # what the check reads is there
    payloads = tmp_path / "payloads.json"
    payloads.write_text(json.dumps(data))
    assert HA_PYTHON is not None
    done = subprocess.run(
        [HA_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(HERE / "pytest.ini"),
         "--rootdir", str(HERE), "--confcutdir", str(HERE), str(HERE / "check_discovery.py")],
        env={**os.environ, "BAMBUPI_BRIDGE_PAYLOADS": str(payloads)}, capture_output=True, text=True, timeout=540,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout
