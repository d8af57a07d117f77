"""The snapshot history: a few camera frames kept on disk, taken when something worth a look happens.

:class:`SnapshotStore` keeps ``<folder>/<printer id>/<UTC time>-<reason>.jpg`` files, at most ``max_count`` per
printer and ``max_bytes`` in all (the oldest go first), so the SD card never fills. Its methods block (file I/O):
call them through ``trio.to_thread.run_sync``.

:class:`SnapshotTaker` is the service that takes them: on a finished or failed print and on a new serious or fatal
HMS error (never a standing one), from :class:`~bambupi.camera.frames.FrameHub`'s latest frame, connecting briefly
if the upstream is closed.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio

from bambupi.atomic_file import write_atomically
from bambupi.camera.frames import CameraGone, FrameHub
from bambupi.state_hub import Event, StateHub

log = logging.getLogger("bambupi.camera")

_NAME = re.compile(r"^(\d{8}T\d{6}\.\d{3}Z)-([a-z_]{1,32})\.jpg$")
# A frame older than this is not "the moment it happened"; connect and wait for a new one instead.
MAX_FRAME_AGE_S: Final = 5.0


@dataclass(frozen=True)
class Snapshot:
    printer: str
    name: str
    at: float
    reason: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "at": self.at,
            "reason": self.reason,
            "size": self.size,
            "url": f"/api/printers/{self.printer}/snapshots/{self.name}",
        }


def snapshot_name(at: float, reason: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
    return f"{stamp}-{reason}.jpg"


def parse_snapshot_name(name: str) -> tuple[float, str] | None:
    """``(at, reason)`` from a file name this store wrote; None for anything else (including path tricks)."""
    match = _NAME.match(name)
    if match is None:
        return None
    stamp, reason = match.groups()
    try:
        seconds = calendar.timegm(time.strptime(stamp[:15], "%Y%m%dT%H%M%S"))
    except ValueError:  # digits that are no time (month 99): a name any client may send, never one we wrote
        return None
    return seconds + int(stamp[16:19]) / 1000, reason


class SnapshotStore:
    def __init__(self, folder: Path, *, max_count: int = 50, max_bytes: int = 200 * 1024 * 1024) -> None:
        self.folder = folder
        self.max_count = max_count
        self.max_bytes = max_bytes

    def save(self, printer_id: str, jpeg: bytes, reason: str, at: float) -> Snapshot:
        folder = self.folder / printer_id
        folder.mkdir(parents=True, exist_ok=True)
        name = snapshot_name(at, reason)
        write_atomically(folder / name, jpeg)  # a reader never sees half a file; a failed write leaves nothing
        self._prune(printer_id)
        return Snapshot(printer_id, name, at, reason, len(jpeg))

    def snapshots(self, printer_id: str) -> list[Snapshot]:
        """Newest first."""
        folder = self.folder / printer_id
        if not folder.is_dir():
            return []
        found: list[Snapshot] = []
        for path in folder.iterdir():
            parsed = parse_snapshot_name(path.name)
            if parsed is None:
                continue
            try:
                size = path.stat().st_size
            except OSError:
                continue  # pruned meanwhile
            found.append(Snapshot(printer_id, path.name, parsed[0], parsed[1], size))
        found.sort(key=lambda s: s.name, reverse=True)
        return found

    def read(self, printer_id: str, name: str) -> bytes | None:
        if parse_snapshot_name(name) is None:
            return None
        try:
            return (self.folder / printer_id / name).read_bytes()
        except OSError:
            return None

    def _prune(self, printer_id: str) -> None:
        for old in self.snapshots(printer_id)[self.max_count :]:
            (self.folder / printer_id / old.name).unlink(missing_ok=True)
        everything = [s for folder in self._printer_folders() for s in self.snapshots(folder)]
        everything.sort(key=lambda s: s.at, reverse=True)
        total = 0
        for snap in everything:
            total += snap.size
            if total > self.max_bytes:
                (self.folder / snap.printer / snap.name).unlink(missing_ok=True)

    def _printer_folders(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return [path.name for path in self.folder.iterdir() if path.is_dir()]


def snapshot_reason(event: Event) -> str | None:
    """Why ``event`` deserves a snapshot, or None. Standing HMS errors (already there at start) do not."""
    kind = event.get("kind")
    if kind == "job_finished":
        return "finished"
    if kind == "job_failed":
        return "failed"
    if kind == "hms_raised" and event.get("severity") in ("serious", "fatal"):
        hms = event.get("hms")
        if isinstance(hms, dict) and hms.get("standing"):
            return None
        return "hms"
    return None


class SnapshotTaker:
    def __init__(self, hub: StateHub, frames: FrameHub, store: SnapshotStore, *, timeout_s: float = 20.0) -> None:
        self._hub = hub
        self._frames = frames
        self.store = store
        self._timeout_s = timeout_s
        self.taken = 0
        self._taking: set[tuple[str, str]] = set()  # (printer, reason) being taken now

    async def run(self, *, task_status: trio.TaskStatus[SnapshotTaker] = trio.TASK_STATUS_IGNORED) -> None:
        async with self._hub.events("camera-snapshots") as queue, trio.open_nursery() as nursery:
            task_status.started(self)
            while True:
                event = await queue.get()
                reason = snapshot_reason(event)
                printer_id = event.get("printer")
                if reason is None or not isinstance(printer_id, str) or not self._frames.has(printer_id):
                    continue
                # One at a time per printer and reason: the one being taken shows that moment (a burst of
                # HMS errors in one report is one snapshot, not one per error).
                if (printer_id, reason) not in self._taking:
                    self._taking.add((printer_id, reason))
                    # Each in its own task: a camera that takes seconds to connect must not hold up the queue.
                    nursery.start_soon(self._take_logged, printer_id, reason)

    async def take(self, printer_id: str, reason: str) -> Snapshot | None:
        """Save the current frame (connecting briefly if needed); None when the camera gave none in time."""
        frame = await self._frames.fresh_frame(printer_id, max_age_s=MAX_FRAME_AGE_S, timeout_s=self._timeout_s)
        if frame is None:
            return None
        snap = await trio.to_thread.run_sync(self.store.save, printer_id, frame.data, reason, frame.at)
        self.taken += 1
        return snap

    async def _take_logged(self, printer_id: str, reason: str) -> None:
        try:
            snap = await self.take(printer_id, reason)
        except CameraGone:
            return
        except OSError as exc:
            log.warning("%s: cannot save a camera snapshot: %s", printer_id, exc)
            return
        finally:
            self._taking.discard((printer_id, reason))
        if snap is None:
            log.info("%s: no camera frame for the %s snapshot", printer_id, reason)
        else:
            log.info("%s: camera snapshot %s", printer_id, snap.name)
