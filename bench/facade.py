"""Printer facade: what its two per-item costs are on this machine.

- An RTSPS camera's frame scaled for the facade's apps (``facade.camera_width`` x ``camera_height``), once per frame
  for all of them: milliseconds per 1920x1080 frame, and the share of one core at ``facade.camera_fps``.
- A report merged into the box's view of the printer (the ``pushall`` answer): microseconds per P1 delta and per
  full X1C report (tests/captures).
"""

from __future__ import annotations

import io
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from bambupi.config import FacadeConfig
from bambupi.facade.camera import scale_jpeg
from bambupi.printer.raw_report import accumulate

CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "captures"
ROUNDS = 20


def _camera_frame(width: int = 1920, height: int = 1080) -> bytes:
    """A 1080p JPEG with a printer-like amount of detail (noise compresses like a real chamber picture)."""
    rng = random.Random(1)
    image = Image.new("RGB", (width, height), (40, 42, 48))
    draw = ImageDraw.Draw(image)
    for _ in range(4000):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.rectangle((x, y, x + rng.randrange(4, 40), y + rng.randrange(4, 40)),
                       fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _median_s(run: Callable[[], object], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    defaults = FacadeConfig()
    frame = _camera_frame()
    print(f"facade: an RTSPS frame of {len(frame) // 1024} KiB (1920x1080) scaled for the apps:")
    for size in ((defaults.camera_width, defaults.camera_height), (640, 360)):
        seconds = _median_s(lambda size=size: scale_jpeg(frame, *size))
        share = seconds * defaults.camera_fps * 100
        print(f"  to fit {size[0]}x{size[1]}: {seconds * 1000:.1f} ms per frame, "
              f"{share:.1f} % of a core at {defaults.camera_fps:g} fps")
    full = json.loads((CAPTURES / "x1c-four-ams.json").read_text())["print"]
    delta = {"command": "push_status", "msg": 1, "mc_percent": 41, "layer_num": 88, "nozzle_temper": 219.5}
    merged = accumulate({}, full)
    per_delta = _median_s(lambda: accumulate(merged, delta), rounds=2000)
    per_full = _median_s(lambda: accumulate(merged, full), rounds=2000)
    print(f"facade: merging a report into the pushall answer: {per_delta * 1e6:.1f} µs per P1 delta, "
          f"{per_full * 1e6:.1f} µs per full X1C report")


if __name__ == "__main__":
    main()
