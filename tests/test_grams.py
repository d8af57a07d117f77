"""Live grams (issue 17): planned grams × the printed share, per filament and in total, computed by the hub."""

from __future__ import annotations

import math
from typing import Any

import trio

from bambupi.printer.grams import live_job_file, progress_fraction, used_grams
from bambupi.state_hub import StateHub
from tests.support import printer_config, report

INFO: dict[str, Any] = {
    "job_id": 1, "status": "ready", "reason": None, "path": "/cache/x.3mf", "plate": 1, "predicted_s": 600.0,
    "planned_g": 12.5, "used_g": None, "thumbnail": None,
    "filaments": [
        {"index": 1, "material": "PLA", "colour": "#FF0000", "planned_g": 10.0, "used_g": None, "tray": None,
         "spool_id": None},
        {"index": 2, "material": "PETG", "colour": "#0000FF", "planned_g": 2.5, "used_g": None, "tray": None,
         "spool_id": None},
    ],
}


def test_the_printed_share_is_layers_else_percent_else_unknown() -> None:
    assert progress_fraction({"layer": 30, "total_layers": 120, "percent": 80}) == 0.25  # layers win
    assert progress_fraction({"layer": None, "total_layers": 0, "percent": 40}) == 0.4
    assert progress_fraction({"layer": 130, "total_layers": 120}) == 1.0  # never above all of it
    assert progress_fraction({"percent": -5}) == 0.0
    assert progress_fraction({"layer": 3, "total_layers": None, "percent": None}) is None
    assert progress_fraction({"percent": math.nan}) is None
    assert progress_fraction({"percent": True}) is None  # not a number, whatever Python says


def test_used_grams_never_exceed_planned() -> None:
    assert used_grams(10.0, 0.333) == 3.33
    assert used_grams(10.0, 1.7) == 10.0
    assert used_grams(None, 0.5) is None and used_grams(10.0, None) is None


def test_live_grams_per_filament_and_in_total() -> None:
    live = live_job_file(INFO, {"layer": 40, "total_layers": 100})
    assert live is not None
    assert [f["used_g"] for f in live["filaments"]] == [4.0, 1.0] and live["used_g"] == 5.0
    # A fixed figure (the recorder's, at the job's end) is kept whatever the printer reports next.
    fixed = {**INFO, "filaments": [{**f, "used_g": f["planned_g"]} for f in INFO["filaments"]]}
    after = live_job_file(fixed, {"layer": 0, "total_layers": 0, "percent": 0})
    assert after is not None and after["used_g"] == 12.5
    # No filaments named: the plate's planned weight × progress; nothing known: unknown, never 0.
    bare = live_job_file({**INFO, "filaments": []}, {"percent": 50})
    assert bare is not None and bare["used_g"] == 6.25
    unknown = live_job_file({**INFO, "planned_g": None, "filaments": []}, {"percent": 50})
    assert unknown is not None and unknown["used_g"] is None
    assert live_job_file(None, {"percent": 50}) is None
    assert INFO["used_g"] is None and INFO["filaments"][0]["used_g"] is None  # the recorder's copy is not changed


async def test_the_card_grams_go_up_with_the_layers_on_a_fake_clock(autojump_clock: Any) -> None:
    """A 100-layer print, one layer a minute on trio's fake clock: the printer object's grams rise with every
    report, never fall, never pass what was planned, and reach it at the end."""
    hub = StateHub([printer_config()])
    hub.set_connection("p", "online")
    hub.apply_message("p", report(gcode_state="IDLE", hms=[]))
    assert hub.printer("p")["job_file"] is None  # no job seen since start
    hub.set_job_file("p", INFO)
    seen: list[float] = []
    for layer in range(0, 101):
        hub.apply_message("p", report(gcode_state="RUNNING", layer_num=layer, total_layer_num=100))
        info = hub.printer("p")["job_file"]
        assert info is not None and isinstance(info["used_g"], float)
        seen.append(info["used_g"])
        await trio.sleep(60)
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 12.5 and max(seen) <= 12.5
    assert seen[50] == 6.25
    version = hub.version
    hub.set_job_file("p", INFO)  # the same info again is no change: no version, no delta
    assert hub.version == version
