"""Start-to-ready time and idle RSS of ``bambupi run`` with one (simulated) printer."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

SERIAL = "01P00A000000001"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    mqtt_port, web_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bambupi.toml"
        config.write_text(
            f'[web]\nlisten = "127.0.0.1:{web_port}"\n\n'
            f'[[printer]]\nid = "bench"\nname = "Bench"\nmodel = "P1S"\nhost = "127.0.0.1"\n'
            f'serial = "{SERIAL}"\naccess_code = "12345678"\nmqtt_port = {mqtt_port}\n\n'
            f'[storage]\npath = "{tmp}/bambupi.sqlite3"\n'
        )
        sim = subprocess.Popen(
            [sys.executable, "-m", "bambupi", "sim", "--mqtt-port", str(mqtt_port), "--serial", SERIAL,
             "--access-code", "12345678", "--scenario", "idle"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            start = time.perf_counter()
            svc = subprocess.Popen(
                [sys.executable, "-m", "bambupi", "run", "-c", str(config)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                ready = None
                while time.perf_counter() - start < 20:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=1):
                            ready = time.perf_counter() - start
                            break
                    except OSError:
                        time.sleep(0.01)
                time.sleep(5)  # idle with the printer connected
                rss = _rss_mib(svc.pid)
            finally:
                svc.terminate()
                svc.wait(10)
        finally:
            sim.terminate()
            sim.wait(10)
    shown = f"{ready:.2f} s" if ready is not None else "not ready in 20 s"
    print(f"start-to-ready (process spawn to first /healthz answer): {shown}")
    print(f"idle RSS with one printer connected: {rss:.1f} MiB")


if __name__ == "__main__":
    main()
