"""Where the job's 3MF is on the printer (bambupi/jobfile/fetch.py candidate_paths), on the values real printers
reported, as ha-bambulab's pybambu ``models.py`` (commit 809391e72abc0f9f25fbd3f3c15b866e67e356c5) records them."""

from __future__ import annotations

from typing import Any

import pytest

from bambupi.jobfile.fetch import candidate_paths


@pytest.mark.parametrize(
    "state,found_at,plate",
    [
        # X1, LAN print from Orca: the plate inside the 3MF on a RAM disk; the file is at the root
        ({"gcode_file": "/data/Metadata/plate_1.gcode", "subtask_name": "Clamshell Parts Box"},
         "/Clamshell Parts Box.gcode.3mf", 1),
        # P1, LAN print from Bambu Studio
        ({"gcode_file": "36mm.gcode.3mf", "subtask_name": "36mm"}, "/36mm.gcode.3mf", None),
        # X1C cloud print of an unsaved workspace (the path as pybambu noted it, lower case)
        ({"gcode_file": "data/metadata/plate_1.gcode", "subtask_name": "FILENAME"}, "/cache/FILENAME.3mf", 1),
        # P1 cloud print
        ({"gcode_file": "Cube + Cube + Cube + Cube + Cube.3mf", "subtask_name": "Cube + Cube + Cube + Cube + Cube"},
         "/cache/Cube + Cube + Cube + Cube + Cube.3mf", None),
        # X1 MakerWorld print, plate 3
        ({"gcode_file": "/data/metadata/plate_3.gcode", "subtask_name": "Lovers Valentine Day Shadowbox"},
         "/cache/Lovers Valentine Day Shadowbox.3mf", 3),
        # the simulator
        ({"gcode_file": "benchy.gcode.3mf", "subtask_name": "benchy"}, "/cache/benchy.3mf", None),
    ],
)
def test_the_file_a_real_printer_had_is_among_the_candidates(state: dict[str, Any], found_at: str,
                                                             plate: int | None) -> None:  # fmt: skip
    paths, named_plate = candidate_paths(state)
    assert found_at in paths
    assert named_plate == plate
    assert all(p.startswith("/") and "Metadata" not in p and "metadata" not in p for p in paths)


def test_the_order_is_the_named_file_then_the_job_name_cache_first() -> None:
    paths, plate = candidate_paths({"gcode_file": "/data/Metadata/plate_2.gcode", "subtask_name": "lid"})
    assert paths == ("/cache/lid.3mf", "/lid.3mf", "/cache/lid.gcode.3mf", "/lid.gcode.3mf") and plate == 2
    paths, _ = candidate_paths({"gcode_file": "lid.gcode.3mf", "subtask_name": "lid"})
    assert paths[:2] == ("/cache/lid.gcode.3mf", "/lid.gcode.3mf") and len(paths) == len(set(paths))


@pytest.mark.parametrize(
    "state",
    [{}, {"gcode_file": None, "subtask_name": None}, {"gcode_file": "", "subtask_name": ""},
     {"gcode_file": "/data/Metadata/plate_1.gcode", "subtask_name": ""},
     {"subtask_name": "x\r\nDELE /cache/y.3mf"}],  # a name that would smuggle a second FTP command
)
def test_no_usable_name_gives_no_candidate(state: dict[str, Any]) -> None:
    assert candidate_paths(state)[0] == ()
