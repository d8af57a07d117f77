"""Bar charts as SVG, drawn on the box (pure: bars in, markup out).

No chart library and no script: the statistics page is small, works without JavaScript and offline, and the Pi
does one string join per chart. Bars are horizontal, one row each, with its label and its value written beside
it, so a chart reads on a 360 px phone and nothing depends on telling colours apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

ROW_H: Final = 22
LABEL_W: Final = 110  # the label column; the bar and its value share the rest
WIDTH: Final = 360
VALUE_W: Final = 80


@dataclass(frozen=True)
class Bar:
    label: str  # what the bar is ("2026-11", "PLA")
    value: float
    text: str  # the value as a person reads it ("12 jobs", "1.2 kg")
    colour: str = ""  # a "#RRGGBB" swatch before the label (filament colour), "" for none


def bar_chart(bars: Sequence[Bar], *, title: str) -> str:
    """An SVG of one bar per row, scaled to the largest value; ``title`` names it for screen readers."""
    top = max([b.value for b in bars if b.value > 0] + [1e-9])
    span = WIDTH - LABEL_W - VALUE_W
    height = max(len(bars), 1) * ROW_H
    parts = [
        f'<svg class="bars" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="{escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">'
    ]
    for row, bar in enumerate(bars):
        y = row * ROW_H
        label_x = 4
        if bar.colour:
            parts.append(
                f'<rect x="0" y="{y + 6}" width="10" height="10" fill="{escape(bar.colour)}" stroke="currentColor"'
                ' stroke-width=".5"/>'
            )
            label_x = 14
        width = max(bar.value, 0.0) / top * span
        parts.append(
            f'<text x="{label_x}" y="{y + 15}" font-size="12" fill="currentColor">{escape(_clip(bar.label))}</text>'
            f'<rect class="chart-bar" x="{LABEL_W}" y="{y + 4}" width="{width:.1f}" height="{ROW_H - 8}"/>'
            f'<text x="{LABEL_W + width + 4:.1f}" y="{y + 15}" font-size="12" fill="currentColor">'
            f"{escape(bar.text)}</text>"
        )
    if not bars:
        parts.append('<text x="4" y="15" font-size="12" fill="currentColor">nothing yet</text>')
    parts.append("</svg>")
    return "".join(parts)


def _clip(label: str, most: int = 14) -> str:
    """Labels share a fixed column: a long one is cut with an ellipsis (the table below the chart has it whole)."""
    return label if len(label) <= most else label[: most - 1] + "…"
