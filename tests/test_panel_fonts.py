"""The OLED's glyphs, pixel by pixel: every character the box draws in each shipped font against its intended shape
(tests/golden/panel/glyphs-<font>.txt, reviewed by eye), and the shapes a person mistook on a real screen.

The X11 misc-fixed fonts drew "." as a 3x3 diamond that reads as "+" on a 128x64 OLED ("IP 192+0+2+2"); the fonts
shipped in bambupi/panel/fonts/ are patched (fonts/README.md). Regenerate the text goldens after an intended change:
BAMBUPI_UPDATE_GOLDEN=1 pytest tests/test_panel_fonts.py, then read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bambupi.panel.screens import CELL, FONTS, FontName, NetworkInfo, Text, View, layout, render

GOLDEN = Path(__file__).parent / "golden" / "panel"
# What the screens draw: ASCII (names, jobs, HMS texts, URLs, clocks) and the degree sign (temperatures).
DRAWN = [chr(c) for c in range(33, 127)] + ["°"]


def glyph(font: FontName, char: str) -> list[str]:
    """``char`` drawn alone in its cell, as rows of "#" (lit) and "." (dark)."""
    width, height = CELL[font]
    image = Image.new("1", (width, height), 0)
    ImageDraw.Draw(image).text((0, 0), char, font=FONTS[font], fill=1)
    return ["".join("#" if image.getpixel((x, y)) else "." for x in range(width)) for y in range(height)]


def sheet(font: FontName) -> str:
    return "".join(f"{char!r}\n" + "\n".join(glyph(font, char)) + "\n\n" for char in DRAWN)


def lit(rows: list[str]) -> set[tuple[int, int]]:
    return {(x, y) for y, row in enumerate(rows) for x, pixel in enumerate(row) if pixel == "#"}


def baseline(font: FontName) -> int:
    """The lowest row of the digits (where "." must sit)."""
    return max(y for digit in "0123456789" for _, y in lit(glyph(font, digit)))


@pytest.mark.parametrize("font", ["small", "body", "big"])
def test_every_glyph_the_box_draws_has_its_intended_shape(font: FontName) -> None:
    path = GOLDEN / f"glyphs-{font}.txt"
    drawn = sheet(font)
    if os.environ.get("BAMBUPI_UPDATE_GOLDEN") or not path.exists():
        assert not os.environ.get("CI"), f"glyph sheet {path} missing"
        path.write_text(drawn)
    expected = path.read_text().split("\n\n")
    for got, want in zip(drawn.split("\n\n"), expected, strict=True):
        assert got == want, f"{font}: glyph differs from {path}:\n{got}\nwanted\n{want}"


@pytest.mark.parametrize("font", ["small", "body", "big"])
def test_a_full_stop_is_a_dot_on_the_baseline_not_a_plus(font: FontName) -> None:
    dot = lit(glyph(font, "."))
    xs, ys = {x for x, _ in dot}, {y for _, y in dot}
    # A solid block of at most 3x3 pixels, its bottom on the digits' baseline: no arms sticking out.
    assert dot == {(x, y) for x in xs for y in ys}, glyph(font, ".")
    assert len(xs) <= 3 and len(ys) <= 3 and max(ys) == baseline(font)


@pytest.mark.parametrize("font", ["small", "body", "big"])
def test_a_colon_is_two_such_dots(font: FontName) -> None:
    dot = lit(glyph(font, "."))
    colon = lit(glyph(font, ":"))
    top = min(y for _, y in colon)
    upper = {(x, y) for x, y in colon if y < top + len({y for _, y in dot})}
    assert len(colon) == 2 * len(dot) and len(upper) == len(dot)
    # Both dots the full stop's shape (the lower one is the full stop itself).
    assert colon - upper == dot
    shift = min(y for _, y in dot) - top
    assert {(x, y + shift) for x, y in upper} == dot


@pytest.mark.parametrize("font", ["small", "body", "big"])
def test_no_two_glyphs_look_the_same(font: FontName) -> None:
    shapes: dict[tuple[str, ...], str] = {}
    for char in DRAWN:
        shape = tuple(glyph(font, char))
        assert lit(list(shape)), f"{font}: {char!r} draws nothing"
        assert shape not in shapes, f"{font}: {char!r} looks like {shapes[shape]!r}"
        shapes[shape] = char


def test_the_network_screen_s_address_reads_as_an_address() -> None:
    """The line from the issue: each "." of "IP 192.0.2.2" is a dot on the screen, never a "+"."""
    view = View("network", network=NetworkInfo("bambupi", "192.0.2.2", None, None, None))
    line = next(item for item in layout(view) if isinstance(item, Text) and item.text.startswith("IP "))
    image = render(view)
    width, height = CELL[line.font]
    for index, char in enumerate(line.text):
        x = line.x + index * width
        cell = image.crop((x, line.y, x + width, line.y + height))
        rows = ["".join("#" if cell.getpixel((cx, cy)) else "." for cx in range(width)) for cy in range(height)]
        assert rows == glyph(line.font, char), f"{char!r} at {index} of {line.text!r}"
    assert "." in line.text
