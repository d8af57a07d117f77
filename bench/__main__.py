"""Run every benchmark and print its figures."""

from __future__ import annotations

import platform
import sys

from bench import bridge, camera, camera_decode, facade, latency, power, startup, ws


def main() -> int:
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu?'}, Python {platform.python_version()}")
    latency.main()
    startup.main()
    power.main()
    ws.main()
    camera.main()
    camera_decode.main()
    facade.main()
    bridge.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
