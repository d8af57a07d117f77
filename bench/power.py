"""Bytes written to disk per hour by the power log at 10 s sampling with one printer, and the sampling loop's CPU.

A child process runs the real :class:`PowerService` against the simulated Tasmota plug (real HTTP on 127.0.0.1),
writing to a real SQLite file on this machine's disk. Time is accelerated by ``SPEEDUP``: samples every
10 s / SPEEDUP and batches every 60 s / SPEEDUP, so one simulated hour takes 3600 / SPEEDUP real seconds with
exactly the hour's number of samples and transactions. Disk bytes are the child's ``write_bytes`` in
``/proc/<pid>/io`` (so WAL frames and checkpoints count), taken after start-up (schema creation) and at the end.
CPU is the child's user+system time over the same window divided by the samples taken, i.e. the cost of one
sample (plug request over HTTP, including the simulated plug answering it in the same process, so an
overestimate), expressed as a share of one core at one sample per 10 s.

The child is also used by the durability test (``tests/test_power_store.py``): ``python -m bench.power child``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

SPEEDUP = 100.0
SAMPLE_S = 10.0
FLUSH_S = 60.0
SIM_HOURS = 1.0


def _io_write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/<pid>/io")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_child(db: Path, sample_s: float, flush_s: float) -> None:
    """Sample a simulated plug into ``db`` until killed; prints ``ready`` once started."""
    from bambupi.config import PlugConfig, PowerConfig, PrinterConfig
    from bambupi.database import Database
    from bambupi.power.service import PowerService
    from bambupi.secret import Secret
    from bambupi.sim.plug import SimulatedPlug
    from bambupi.sim.printer import SimulatedPrinter
    from bambupi.state_hub import StateHub

    async with trio.open_nursery() as nursery:
        plug = await nursery.start(SimulatedPlug(SimulatedPrinter("P1S", "01P00A000000001")).run)
        printer = PrinterConfig(
            id="bench", name="Bench", model="P1S", host="127.0.0.1", serial="01P00A000000001",
            access_code=Secret("12345678"), plug=PlugConfig(kind="tasmota", address=plug.url),
        )
        hub = StateHub([printer])
        store = await trio.to_thread.run_sync(Database, db)
        power = PowerService(hub, [printer], store, PowerConfig(sample_interval_s=sample_s, flush_interval_s=flush_s))
        await nursery.start(power.run)
        print("ready", flush=True)


def start_child(db: Path, sample_s: float, flush_s: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.power", "child", str(db), str(sample_s), str(flush_s)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        child.kill()
        raise RuntimeError("the sampler child did not start")
    return child


def main() -> None:
    wall_s = SIM_HOURS * 3600 / SPEEDUP
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        db = Path(tmp) / "bambupi.sqlite3"
        child = start_child(db, SAMPLE_S / SPEEDUP, FLUSH_S / SPEEDUP)
        try:
            time.sleep(FLUSH_S / SPEEDUP * 2)  # past the first batch and the first downsampling pass
            bytes0, cpu0 = _io_write_bytes(child.pid), _cpu_s(child.pid)
            time.sleep(wall_s)
            bytes1, cpu1 = _io_write_bytes(child.pid), _cpu_s(child.pid)
        finally:
            child.kill()
            child.wait()
    samples = SIM_HOURS * 3600 / SAMPLE_S
    per_hour = (bytes1 - bytes0) / SIM_HOURS
    cpu_per_sample = (cpu1 - cpu0) / samples
    print(
        f"power log: {per_hour / 1024:.0f} KiB written per hour at {SAMPLE_S:g} s sampling, {FLUSH_S:g} s batches "
        f"(write_bytes over {SIM_HOURS:g} simulated h at {SPEEDUP:g}x; {samples:.0f} samples, "
        f"{SIM_HOURS * 3600 / FLUSH_S:.0f} transactions)"
    )
    print(
        f"power sampling: {cpu_per_sample * 1000:.1f} ms CPU per sample = {cpu_per_sample / SAMPLE_S * 100:.3f} % "
        f"of one core at one sample per {SAMPLE_S:g} s (includes the simulated plug's side)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "child":
        trio.run(run_child, Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
