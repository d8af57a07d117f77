"""The whole simulated device: the printer's state machine, its MQTT broker, its camera and a scripted scenario.

Example::

    sim = Simulator("P1S", "01P00A000000001", "12345678", scenario="print")
    await nursery.start(sim.run)
    print(sim.mqtt_port, sim.printer.gcode_state)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

import trio

from bambupi.sim.broker import Broker, server_ssl_context
from bambupi.sim.camera import CameraServer, FrameInfo
from bambupi.sim.ftps import FtpsServer
from bambupi.sim.printer import SimulatedPrinter
from bambupi.sim.rtsps import RtspsCameraServer, encoder_available
from bambupi.sim.scenarios import SCENARIOS, run_scenario
from bambupi.sim.threemf import job_filaments, make_3mf

log = logging.getLogger(__name__)

JOB_FILES_KEPT: Final = 5


class Simulator:
    """A simulated Bambu printer on the network: MQTT/TLS broker + printer state machine + a scripted scenario.

    ``time_scale`` is simulated seconds per real second for print progress and heating (60 turns a 20-minute
    print into 20 seconds). Link trouble (``silent``, ``drop``) keeps real seconds, since it exercises the
    client's real-time timers. ``signed_commands`` plays 2025 firmware without Developer mode: controls refused.
    """

    def __init__(
        self,
        model: str,
        serial: str,
        access_code: str,
        *,
        host: str = "127.0.0.1",
        mqtt_port: int = 0,
        scenario: str = "print",
        cert: Path | None = None,
        key: Path | None = None,
        time_scale: float = 1.0,
        signed_commands: bool = False,
        max_clients: int | None = None,
        camera_port: int | None = None,
        camera_fps: float = 2.0,
        ftps_port: int | None = None,
        rtsps_port: int | None = None,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
        self.host = host
        self.mqtt_port = mqtt_port
        self.scenario = scenario
        self.printer = SimulatedPrinter(model, serial, time_scale=time_scale, signed_commands=signed_commands)
        self.broker = Broker(
            serial, access_code, server_ssl_context(cert, key), self.printer.handle_request, max_clients=max_clients
        )
        self.printer.attach(self.broker)
        # The port-6000 camera (None: no camera; 0: any free port, bound in run()).
        self.camera_port = camera_port
        self.camera: CameraServer | None = None
        if camera_port is not None:
            self.camera = CameraServer(
                access_code, server_ssl_context(cert, key), self._camera_frame_info, fps=camera_fps
            )

        # The X1/H2/P2 camera, RTSPS (None: none, and the reports say "LAN Only Liveview" is off; 0: any free port).
        # It needs ffmpeg to encode H.264; without it the camera stays off.
        self.rtsps_port = rtsps_port
        self.rtsps: RtspsCameraServer | None = None
        if rtsps_port is not None and self.printer.profile.rtsp_camera:
            if encoder_available():
                self.rtsps = RtspsCameraServer(
                    access_code, server_ssl_context(cert, key), self._camera_frame_info, fps=camera_fps,
                    frozen_timestamps=self.printer.profile.name == "P2S",  # its firmware 01.02.00.00 does
                )
            else:
                log.warning("simulator: no ffmpeg here to encode the RTSPS camera: it stays off (LAN Only Liveview)")

        # The FTPS server with each job's 3MF (None: no FTPS; 0: any free port, bound in run()).
        self.ftps_port = ftps_port
        self.ftps: FtpsServer | None = None
        self._job_files: dict[str, bytes] = {}  # /cache/<name>.3mf of the recent jobs, like a printer's cache
        if ftps_port is not None:
            self.ftps = FtpsServer(access_code, server_ssl_context(cert, key), self._ftps_files)

    def _ftps_files(self) -> dict[str, bytes]:
        """The recent jobs' 3MFs; the running job's made when first asked for."""
        job = self.printer.state.job
        if job is not None:
            path = f"/cache/{job.name}.3mf"
            if path not in self._job_files:
                filaments = job_filaments(self.printer.state, job.seconds)
                self._job_files[path] = make_3mf(filaments, job.seconds)
                while len(self._job_files) > JOB_FILES_KEPT:
                    del self._job_files[next(iter(self._job_files))]
        return self._job_files

    def _camera_frame_info(self) -> FrameInfo:
        job = self.printer.state.job
        return FrameInfo(
            model=self.printer.profile.name, gcode_state=self.printer.gcode_state, percent=self.printer.percent,
            job=job.name if job is not None else None, at=time.time(), number=0,
        )

    @property
    def connected_clients(self) -> int:
        return self.broker.connected_clients

    async def run(self, *, task_status: trio.TaskStatus[Simulator] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.mqtt_port = await nursery.start(self.broker.serve, self.host, self.mqtt_port)
            if self.camera is not None:
                self.camera_port = await nursery.start(self.camera.serve, self.host, self.camera_port or 0)
            if self.ftps is not None:
                self.ftps_port = await nursery.start(self.ftps.serve, self.host, self.ftps_port or 0)
            if self.rtsps is not None:
                self.rtsps_port = await nursery.start(self.rtsps.serve, self.host, self.rtsps_port or 0)
                self.printer.state.liveview_url = f"rtsps://{self.host}/streaming/live/1"
            await nursery.start(self.printer.run)
            nursery.start_soon(run_scenario, self.scenario, self.printer)
            log.info(
                "simulator: %s %s on %s:%d, scenario %r",
                self.printer.profile.name, self.printer.serial, self.host, self.mqtt_port, self.scenario,
            )
            task_status.started(self)
