"""A print on a box whose disk is full (issue 17): a real 512 KiB tmpfs holds the database, the thumbnails and the
scratch file the job's 3MF is read into; the simulator serves the 3MF over real FTPS. What the owner sees must say
what is wrong (the box's disk, not the printer's FTPS nor "an error in bambupi"), and the print is recorded once the
disk has room again.

Mounting needs root (or password-less sudo); without it the test is skipped, under ``CI=true`` it fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tests.support import fill, wait_for
from tests.test_history_recorder_sim import WAIT, start


async def test_a_full_disk_while_a_print_starts_is_said_on_the_card_and_the_pages_and_the_print_lands_later(
    tiny_disk: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery, tiny_disk)
        filler = fill(tiny_disk)
        rig.sim.printer.start_print("on_a_full_disk", layers=20, minutes=20)

        async def settled() -> dict[str, Any] | None:
            info = await rig.job_file()
            return info if info is not None and info["status"] == "unavailable" else None

        await wait_for(settled, WAIT)
        info = await settled()
        assert info is not None
        # The box's own disk, in words: not the printer's FTPS, not "an error in bambupi: see its log".
        assert "the box could not write" in info["reason"] and "No space left" in info["reason"], info["reason"]
        for path in ("/history", "/stats"):
            page = (await rig.http.get(path)).text
            assert 'id="history-warning"' in page and "disk is full" in page, path  # why the print is not listed
            assert "power log" not in page, path  # the database holds more than the power log now
        filler.unlink()
        await rig.sim.printer.wait_until(lambda p: p.gcode_state == "FINISH")

        async def landed() -> dict[str, Any] | None:
            job = await rig.last_job()
            return job if job is not None and job["result"] == "finished" else None

        await wait_for(landed, WAIT)
        job = await landed()
        assert job is not None and job["name"] == "on_a_full_disk"
        assert job["file_problem"] is not None and "No space left" in job["file_problem"]
        assert 'id="history-warning"' not in (await rig.http.get("/history")).text
        await rig.http.aclose()
        nursery.cancel_scope.cancel()
