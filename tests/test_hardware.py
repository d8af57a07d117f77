"""The hardware folder agrees with itself: pins.toml (also in the package), the wiring table, the enclosure."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bambupi.config import PanelConfig
from bambupi.config.wiring import PINS_TOML, default_pins, load_default_pins

REPO = Path(__file__).resolve().parent.parent
HARDWARE = REPO / "hardware"
SCAD = HARDWARE / "enclosure" / "bambupi-case.scad"


def test_pins_toml_in_the_repo_is_the_packaged_one() -> None:
    assert (HARDWARE / "pins.toml").read_bytes() == PINS_TOML.read_bytes()
    pins = default_pins()
    assert load_default_pins(HARDWARE / "pins.toml") == pins
    config = PanelConfig()
    assert (config.led_green, config.led_amber, config.led_red, config.buzzer_pin, config.button) == (
        pins.led_green, pins.led_amber, pins.led_red, pins.buzzer, pins.button,
    )
    assert (config.i2c_port, config.i2c_address) == (pins.i2c_port, pins.i2c_address)


def test_pins_toml_is_package_data() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '"data/*"' in text and PINS_TOML.parent.name == "data" and PINS_TOML.parent.parent.name == "bambupi"


def test_wiring_table_matches_pins_toml() -> None:
    rows = {}
    for line in (HARDWARE / "README.md").read_text().splitlines():
        match = re.match(r"^\| [^|]+ \| `(\w+)` \| (GPIO\d+) \| (\d+) \|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    pins = default_pins()
    expected = {
        "led_green": pins.led_green, "led_amber": pins.led_amber, "led_red": pins.led_red,
        "buzzer": pins.buzzer, "button": pins.button,
    }
    assert rows == expected
    assert f"`0x{pins.i2c_address:X}`" in (HARDWARE / "README.md").read_text()


def test_bom_lists_both_builds() -> None:
    with (HARDWARE / "bom.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {"part", "quantity", "build", "approx_price_eur"} <= set(rows[0])
    assert {r["build"] for r in rows} == {"zero", "pi4", "both"}
    assert all(float(r["approx_price_eur"]) > 0 for r in rows)


def require_openscad() -> str:
    found = shutil.which("openscad")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("openscad is required in CI (apt-get install openscad)")
        pytest.skip("openscad not installed")
    return found


def render(tmp_path: Path, part: str) -> tuple[tuple[float, ...], str]:
    """(min x, y, z, max x, y, z) of the rendered STL, and openscad's ECHO output."""
    out = tmp_path / f"{part}.stl"
    done = subprocess.run(
        [require_openscad(), "-o", str(out), "-D", f'part="{part}"', str(SCAD)],
        capture_output=True, text=True, timeout=90, check=True,
    )
    points = [tuple(float(v) for v in line.split()[1:4]) for line in out.read_text().splitlines()
              if line.strip().startswith("vertex")]
    assert points, "empty STL"
    bounds = tuple(min(p[i] for p in points) for i in range(3)) + tuple(max(p[i] for p in points) for i in range(3))
    return bounds, done.stderr


def size(bounds: tuple[float, ...]) -> list[float]:
    return [round(bounds[i + 3] - bounds[i], 2) for i in range(3)]


def test_enclosure_renders_with_the_documented_dimensions(tmp_path: Path) -> None:
    bounds, echo = render(tmp_path, "case")
    outer = re.search(r'ECHO: "outer", ([\d.]+), ([\d.]+), ([\d.]+)', echo)
    assert outer is not None
    assert size(bounds)[:2] == [float(outer.group(1)), float(outer.group(2))]
    readme = (HARDWARE / "README.md").read_text()
    x, y, z = (float(outer.group(i)) for i in (1, 2, 3))
    assert f"| outer size (pi4) | {x:g} × {y:g} × {z:g} mm" in readme
    # The OLED window fits the documented module (active area 21.7 x 10.9 mm inside a 27.5 mm board).
    window, _ = render(tmp_path, "oled_window")
    w, h, _ = size(window)
    assert (w, h) == (24.0, 12.0) and "| OLED window | 24 × 12 mm |" in readme
    assert 21.7 < w < 27.5 and 10.9 < h < 27.8
    hole, _ = render(tmp_path, "led_hole")
    d = size(hole)[0]
    assert 5.0 < d <= 5.3 and "| LED holes | 5.2 mm diameter, 10 mm apart |" in readme


@pytest.mark.parametrize("board", ["pi4", "zero"])
def test_the_light_sensor_window_goes_through_the_top_wall(tmp_path: Path, board: str) -> None:
    window, echo = render(tmp_path, "sensor_window")
    width, depth, height = size(window)
    diameter = re.search(r'ECHO: "sensor_window_d", ([\d.]+)', echo)
    assert diameter is not None and width == height == float(diameter.group(1)) == 4.0
    assert depth > 2.0  # through the whole wall (along y: the top wall)
    assert "| light sensor window | 4 mm diameter, in the top wall |" in (HARDWARE / "README.md").read_text()
    # Nothing of the case is left inside the window: the hole is cut at the place the frame holds the board.
    left = tmp_path / "left.stl"
    subprocess.run(
        [require_openscad(), "-o", str(left), "-D", 'part="sensor_window_in_case"', "-D", f'board="{board}"',
         str(SCAD)], capture_output=True, text=True, timeout=90, check=True,
    )
    assert "vertex" not in left.read_text()


def test_the_light_sensor_address_default_comes_from_pins_toml() -> None:
    assert PanelConfig().light_sensor_address == default_pins().light_sensor_address == 0x23
