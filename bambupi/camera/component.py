"""The camera as a component: the frame hub (one upstream per printer), the snapshot history, and their routes."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import trio

from bambupi.camera.frames import FrameHub, default_source
from bambupi.camera.page import add_camera_page
from bambupi.camera.routes import CameraRoutes
from bambupi.camera.snapshots import SnapshotStore, SnapshotTaker
from bambupi.component import RESTART, Applied, Web
from bambupi.config import CameraConfig, Config, PrinterConfig
from bambupi.printer.tls_pins import PinStore
from bambupi.state_hub import StateHub
from bambupi.web.route_contract import Access

NOTIFY_FRAME_MAX_AGE_S = 10.0
NOTIFY_FRAME_TIMEOUT_S = 5.0


class CameraComponent:
    name = "camera"
    sections = ("camera", "printer")

    def __init__(
        self, hub: StateHub, printers: Sequence[PrinterConfig], config: CameraConfig, *, pins: PinStore,
        snapshot_folder: Path,
    ) -> None:
        self._hub = hub
        self._config = config
        self.frames = FrameHub(
            hub, printers, linger_s=config.linger_s, keep_open_while_printing=config.keep_open_while_printing,
            source_for=functools.partial(default_source, pins=pins, camera=config),
        )
        store = SnapshotStore(snapshot_folder, max_count=config.history_count, max_bytes=config.history_bytes)
        self.snapshots = SnapshotTaker(hub, self.frames, store)

    def add_routes(self, web: Web) -> None:
        add_camera_page(web.app)
        guard = web.guard
        web.native.append(
            CameraRoutes(
                self.frames, self.snapshots, write_timeout_s=self._config.write_timeout_s,
                refusal=lambda request, changes: guard.native_refusal(
                    request, Access.OPERATOR if changes else Access.VIEWER
                ),
            )
        )

    async def run(self, *, task_status: trio.TaskStatus[CameraComponent] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.frames.run)
            await nursery.start(self.snapshots.run)
            task_status.started(self)

    async def apply(self, old: Config, new: Config) -> Applied:
        if old.camera != new.camera:
            return RESTART
        before = {p.id: p for p in old.printers}
        after = {p.id: p for p in new.printers}
        for printer_id in before.keys() - after.keys():
            self.frames.remove_printer(printer_id)
        for printer_id, printer in after.items():
            if printer_id not in before:
                self.frames.add_printer(printer)
            elif printer != before[printer_id]:
                self.frames.update_printer(printer)
        return []  # the links' lines say what happened to each printer

    async def snapshot(self, printer_id: str) -> bytes | None:
        """A recent frame for a notification, connecting briefly if needed; None without a working camera."""
        if self._hub.has(printer_id) and self._hub.printer(printer_id)["camera"].get("status") in (
            "error", "off", "disabled",
        ):
            return None  # known not to answer: do not hold the message for it
        if not self.frames.has(printer_id):
            return None
        frame = await self.frames.fresh_frame(
            printer_id, max_age_s=NOTIFY_FRAME_MAX_AGE_S, timeout_s=NOTIFY_FRAME_TIMEOUT_S
        )
        return frame.data if frame is not None else None
