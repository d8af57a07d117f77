"""One source of model facts: bambupi/printer_models.py. The simulator and discovery read it, and its facts agree
with every real capture."""

from __future__ import annotations

from typing import Any

import pytest

from bambupi.printer_models import KNOWN_MODELS, model_info
from bambupi.sim import printer as sim
from tests.capture_corpus import Capture, all_captures


def first_report(item: Capture) -> dict[str, Any]:
    report: dict[str, Any] = item.messages[0]["print"]
    return report


@pytest.mark.parametrize("item", all_captures(), ids=lambda item: item.name)
def test_the_facts_agree_with_every_real_capture(item: Capture) -> None:
    info = model_info(item.model)
    report = first_report(item)
    assert info.model in KNOWN_MODELS
    assert [light["node"] for light in report["lights_report"]] == list(info.lights)
    if info.packed_temps:  # (current X1 firmware sends device.* too, beside the plain fields it is read from)
        assert "temp" in report["device"]["bed"]["info"]
    if "extruder" in report.get("device", {}):
        assert len(report["device"]["extruder"]["info"]) == info.extruders
    if not info.has_chamber_sensor and not info.packed_temps:
        assert report["chamber_temper"] == 5  # the constant of a printer without the sensor
    if info.camera_kind == "tls6000":
        assert "rtsp_url" not in report.get("ipcam", {})
    if info.door == "stat":
        assert "stat" in report


def test_the_simulator_plays_every_known_model_and_no_other() -> None:
    assert sorted(sim.PROFILES) == sorted(KNOWN_MODELS)


@pytest.mark.parametrize("model", sorted(KNOWN_MODELS))
def test_the_simulator_reports_each_model_as_models_py_describes_it(model: str) -> None:
    info = model_info(model)
    profile = sim.profile_for(model)
    report = sim.render_report(sim.initial_state(profile, "SIM"))
    assert profile.info == info
    assert [light["node"] for light in report["lights_report"]] == list(info.lights)
    assert ("device" in report) == info.packed_temps == ("nozzle_temper" not in report)
    if info.packed_temps:
        assert len(report["device"]["extruder"]["info"]) == info.extruders
    else:
        assert (report["chamber_temper"] != 5) == info.has_chamber_sensor
    assert ("rtsp_url" in report["ipcam"]) == (info.camera_kind == "rtsps")
    assert (info.door is not None and info.door in report) or info.door is None


@pytest.mark.parametrize("written", ["a1 mini", "X1-Carbon", "h2d pro", "A1M"])
def test_the_simulator_takes_a_model_as_people_write_it(written: str) -> None:
    assert sim.profile_for(written).name == model_info(written).model
