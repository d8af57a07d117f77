"""The simulated job's 3MF: a real zip laid out as Bambu Studio writes one, for the simulator's FTPS server.

It holds what a reader of a printer's 3MF looks at: ``3D/3dmodel.model`` (a stub cube), ``Metadata/slice_info.config``
(one plate whose filaments are the simulated AMS trays' types and colours, with the grams the job will use) and
``Metadata/plate_1.png`` (a small picture drawn with Pillow), plus a ``Metadata/plate_1.gcode`` stand-in, so the file
looks like a sliced one. Pure: state in, bytes out.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import quoteattr

from PIL import Image, ImageDraw

from bambupi.sim.printer import PrinterState, Tray

GRAMS_PER_SECOND: Final = 10.0 / 420.0  # the simulator's trays lose 1 % of 1 kg every 7 minutes of printing
ACCENT_SHARE: Final = 0.1  # the second filament's share of a two-colour job

_MODEL: Final = """<?xml version="1.0" encoding="UTF-8"?>
<model unit="millimeter" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">
 <resources><object id="1" type="model"><mesh><vertices>
  <vertex x="0" y="0" z="0"/><vertex x="20" y="0" z="0"/><vertex x="0" y="20" z="0"/><vertex x="0" y="0" z="20"/>
 </vertices><triangles>
  <triangle v1="0" v2="2" v3="1"/><triangle v1="0" v2="1" v3="3"/><triangle v1="0" v2="3" v3="2"/>
  <triangle v1="1" v2="2" v3="3"/>
 </triangles></mesh></object></resources>
 <build><item objectid="1"/></build>
</model>
"""


@dataclass(frozen=True)
class SimFilament:
    index: int  # the project's filament id (1-based): the AMS slot's position + 1
    material: str
    colour: str  # "#RRGGBB"
    grams: float
    tray_info_idx: str


def job_filaments(state: PrinterState, seconds: float) -> tuple[SimFilament, ...]:
    """The filaments of a ``seconds``-long job on the simulated printer: the tray it loads for a print (the first
    unit's second slot) and, when there is one, the first unit's first slot as an accent colour."""
    unit = state.ams[0] if state.ams else None
    trays: list[tuple[int, Tray]] = [(i, t) for i, t in enumerate(unit.trays) if t is not None] if unit else []
    total = round(seconds * GRAMS_PER_SECOND, 2)
    main = next(((i, t) for i, t in trays if i == 1), trays[0] if trays else None)
    if main is None:
        return ()
    accent = next(((i, t) for i, t in trays if i != main[0]), None)
    shares = [(main, total)] if accent is None else [(main, total * (1 - ACCENT_SHARE)), (accent, total * ACCENT_SHARE)]
    return tuple(
        SimFilament(i + 1, tray.tray_type, "#" + tray.color[:6].upper(), round(grams, 2), tray.info_idx)
        for (i, tray), grams in sorted(shares, key=lambda share: share[0][0])
    )


def slice_info(filaments: Sequence[SimFilament], predicted_s: float, *, plate: int = 1) -> str:
    """slice_info.config as Bambu Studio writes it (attribute order and all)."""
    weight = sum(f.grams for f in filaments)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<config>",
        "  <header>",
        '    <header_item key="X-BBL-Client-Type" value="slicer"/>',
        '    <header_item key="X-BBL-Client-Version" value="02.01.01.52"/>',
        "  </header>",
        "  <plate>",
        f'    <metadata key="index" value="{plate}"/>',
        f'    <metadata key="prediction" value="{round(predicted_s)}"/>',
        f'    <metadata key="weight" value="{weight:.2f}"/>',
        '    <metadata key="support_used" value="false"/>',
    ]
    for f in filaments:
        metres = f.grams / 2.98  # PLA, 1.75 mm: about 2.98 g a metre
        lines.append(
            f'    <filament id="{f.index}" tray_info_idx={quoteattr(f.tray_info_idx)} type={quoteattr(f.material)} '
            f'color="{f.colour}" used_m="{metres:.2f}" used_g="{f.grams:.2f}"/>'
        )
    lines += ["  </plate>", "</config>", ""]
    return "\n".join(lines)


def plate_picture(filaments: Sequence[SimFilament], *, size: int = 128) -> bytes:
    """A small PNG of the plate: a grey bed with one block per filament in its colour."""
    image = Image.new("RGB", (size, size), (40, 42, 48))
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, size - 40, size - 8, size - 8), fill=(90, 92, 100))
    width = (size - 32) // max(1, len(filaments))
    for n, f in enumerate(filaments):
        left = 16 + n * width
        draw.rectangle((left, 24, left + width - 6, size - 44), fill=f.colour or "#808080")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def make_3mf(filaments: Sequence[SimFilament], predicted_s: float, *, plate: int = 1) -> bytes:
    """The whole 3MF, deflated like Bambu Studio's."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("3D/3dmodel.model", _MODEL)
        archive.writestr(f"Metadata/plate_{plate}.gcode", "; bambupi simulator: no G-code is printed from here\n")
        archive.writestr("Metadata/slice_info.config", slice_info(filaments, predicted_s, plate=plate))
        archive.writestr(f"Metadata/plate_{plate}.png", plate_picture(filaments))
    return out.getvalue()


_CONTENT_TYPES: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
    '<Default Extension="png" ContentType="image/png"/></Types>'
)
_RELS: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Target="/3D/3dmodel.model" Id="rel-1" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
)
