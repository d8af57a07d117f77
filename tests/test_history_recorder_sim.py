"""The job recorder against ``bambupi sim`` over real FTPS (issue 17's "done when"): the whole service from a config
file, the simulator's MQTT and its FTPS (implicit TLS, session reuse required, the access code, the same pinned
certificate), a real 3MF of the simulator's making; each FTPS trouble is a reason on the card and in the row, and the
job is recorded all the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bambupi.config import load_config
from bambupi.service import Service
from bambupi.sim.simulator import Simulator
from tests.support import CODE, SERIAL, wait_for

WAIT = 60  # bounds a hang only
CONFIG = """\
[web]
listen = "127.0.0.1:0"

[[printer]]
id = "garage"
model = "P1S"
host = "127.0.0.1"
serial = "{serial}"
access_code = "{code}"
mqtt_port = {mqtt_port}
ftps_port = {ftps_port}
reconnect_max_s = 0.5

[history]
fetch_timeout_s = {timeout}

[storage]
path = "{folder}/bambupi.sqlite3"
"""


class Rig:
    def __init__(self, sim: Simulator, http: httpx.AsyncClient) -> None:
        self.sim = sim
        self.http = http

    async def job_file(self) -> dict[str, Any] | None:
        info = (await self.http.get("/api/printers/garage")).json()["job_file"]
        return dict(info) if info is not None else None

    async def last_job(self) -> dict[str, Any] | None:
        jobs = (await self.http.get("/api/jobs")).json()["jobs"]
        if not jobs:
            return None
        answer = (await self.http.get(f"/api/jobs/{jobs[0]['id']}")).json()
        return dict(answer.get("job", answer))


async def start(
    nursery: trio.Nursery, tmp_path: Path, *, timeout: float = 60, sim: Simulator | None = None
) -> Rig:
    if sim is None:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle", time_scale=60, ftps_port=0)
        await nursery.start(sim.run)
    path = tmp_path / "bambupi.toml"
    path.write_text(CONFIG.format(serial=SERIAL, code=CODE, mqtt_port=sim.mqtt_port, ftps_port=sim.ftps_port,
                                  folder=tmp_path, timeout=timeout))  # fmt: skip
    config, _ = load_config(path)
    running = await nursery.start(Service(config, storage_folder=tmp_path).run)
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}", timeout=WAIT)

    async def online() -> bool:
        return bool((await http.get("/api/printers/garage")).json()["connection"] == "online")

    await wait_for(online, WAIT)
    return Rig(sim, http)


async def test_a_print_fetches_its_3mf_shows_live_grams_and_records_grams_per_filament(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery, tmp_path)
        rig.sim.printer.start_print("gear_box", layers=50, minutes=30)

        async def ready() -> dict[str, Any] | None:
            info = await rig.job_file()
            return info if info is not None and info["status"] == "ready" else None

        await wait_for(ready, WAIT)
        info = await ready()
        assert info is not None and info["path"] == "/cache/gear_box.3mf" and info["planned_g"] > 0
        assert info["thumbnail"] == f"/api/jobs/{info['job_id']}/thumbnail" and info["filaments"]
        # The simulator's job feeds from AMS 1 slot 2 (tray_now 1): its filament came from there.
        assert {"ams": 0, "tray": 1} in [f["tray"] for f in info["filaments"]]
        seen: list[float] = []

        async def grams_went_up() -> bool:
            current = await rig.job_file()
            assert current is not None
            seen.append(current["used_g"] or 0.0)
            return len({*seen}) >= 3

        await wait_for(grams_went_up, WAIT)
        assert seen == sorted(seen) and max(seen) <= info["planned_g"]
        await rig.sim.printer.wait_until(lambda p: p.gcode_state == "FINISH")

        async def finished() -> dict[str, Any] | None:
            job = await rig.last_job()
            return job if job is not None and job["result"] == "finished" and job["used_g"] is not None else None

        await wait_for(finished, WAIT)
        job = await finished()
        thumbnail = await rig.http.get(info["thumbnail"])
        await rig.http.aclose()
        nursery.cancel_scope.cancel()
    assert job is not None and job["name"] == "gear_box" and job["used_g"] == pytest.approx(info["planned_g"])
    assert job["file_problem"] is None and job["predicted_s"] and job["file_path"] == "/cache/gear_box.3mf"
    assert sum(f["used_g"] for f in job["filaments"]) == pytest.approx(job["used_g"], abs=0.02)
    assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(("fault", "reason"), [
    ("off", "FTPS"),
    ("missing", "file not found on the printer"),
    ("malformed", "not a 3MF"),
    ("too_large", "3MF too large"),
    ("stall", "timed out"),
])
async def test_each_ftps_trouble_is_a_reason_and_the_job_is_still_recorded(
    tmp_path: Path, fault: str, reason: str
) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery, tmp_path, timeout=3)  # "stall" waits out the whole fetch
        assert rig.sim.ftps is not None
        rig.sim.ftps.set_fault(fault)
        rig.sim.printer.start_print("bracket", layers=20, minutes=10)

        async def unavailable() -> dict[str, Any] | None:
            info = await rig.job_file()
            return info if info is not None and info["status"] == "unavailable" else None

        await wait_for(unavailable, WAIT)
        info = await unavailable()
        assert info is not None and info["reason"].startswith("grams unknown: ") and reason in info["reason"]
        assert CODE not in info["reason"]
        rig.sim.printer.fail()

        async def failed() -> dict[str, Any] | None:
            job = await rig.last_job()
            return job if job is not None and job["result"] == "failed" else None

        await wait_for(failed, WAIT)
        job = await failed()
        await rig.http.aclose()
        nursery.cancel_scope.cancel()
    assert job is not None and job["name"] == "bracket" and reason in job["file_problem"]
    assert job["used_g"] is None and job["print_error"] and job["error_text"]


async def test_a_print_under_way_when_the_box_starts_is_recorded_with_its_file_and_a_restart_keeps_its_row(
    tmp_path: Path,
) -> None:
    """The box powered on (or restarted) mid-print: no start is seen, yet the job gets a row, its 3MF and live grams;
    after a restart the same row goes on (not an "unknown" end and a second row)."""
    async with trio.open_nursery() as outer:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle", time_scale=60, ftps_port=0)
        await outer.start(sim.run)
        sim.printer.start_print("long_vase", layers=400, minutes=600)
        await sim.printer.wait_until(lambda p: p.gcode_state == "RUNNING")
        rows: list[int] = []
        for _run in range(2):
            async with trio.open_nursery() as nursery:
                rig = await start(nursery, tmp_path, sim=sim)

                async def ready(rig: Rig = rig) -> dict[str, Any] | None:
                    info = await rig.job_file()
                    return info if info is not None and info["status"] == "ready" else None

                await wait_for(ready, WAIT)
                info = await ready()
                assert info is not None and info["path"] == "/cache/long_vase.3mf" and info["planned_g"] > 0
                assert info["used_g"] is not None and 0 < info["used_g"] < info["planned_g"]
                jobs = (await rig.http.get("/api/jobs")).json()["jobs"]
                assert [(j["name"], j["result"]) for j in jobs] == [("long_vase", None)]
                rows.append(jobs[0]["id"])
                await rig.http.aclose()
                nursery.cancel_scope.cancel()
        outer.cancel_scope.cancel()
    assert rows[0] == rows[1] == info["job_id"]
