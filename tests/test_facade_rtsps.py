"""The printer facade's camera for an RTSPS printer (X1, H2, P2S, X2D): the issue's ESP32 case, against the
simulator's RTSPS camera (H.264 encoded with ffmpeg) and the box's real decoder."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import trio
from PIL import Image

from bambupi.camera.jpeg import is_jpeg
from bambupi.config import load_config
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from tests.support import wait_for

SERIAL = "01P00A000000777"
CODE = "12345678"  # the printer's
FACADE_CODE = "fac4de01"  # the facade's own


async def test_an_x1c_camera_reaches_a_port_6000_app_as_jpeg_frames_of_the_facades_size(tmp_path: Path) -> None:
    """The issue's ESP32 case: an X1C's H.264 camera (the simulator's RTSPS server), decoded once by the box, served
    on the facade's port-6000 endpoint as JPEGs scaled to the configured size; bambulabs_api reads them, and the
    printer sees the box's one camera connection."""
    from bambulabs_api.camera_client import PrinterCamera

    from bambupi.sim.rtsps import encoder_available

    if not encoder_available():
        pytest.skip("ffmpeg is not installed: the simulator cannot encode an RTSPS camera")
    async with trio.open_nursery() as nursery:
        sim = Simulator("X1C", SERIAL, CODE, scenario="idle", rtsps_port=0)
        await nursery.start(sim.run)
        assert sim.rtsps is not None
        path = tmp_path / "bambupi.toml"
        path.write_text(
            f'[web]\nlisten = "127.0.0.1:0"\n\n'
            f'[[printer]]\nid = "garage"\nmodel = "X1C"\nhost = "127.0.0.1"\nserial = "{SERIAL}"\n'
            f'access_code = "{CODE}"\nmqtt_port = {sim.mqtt_port}\ncamera_port = {sim.rtsps_port}\n\n'
            f'[camera]\nlinger_s = 60\n\n'
            f'[facade]\nenabled = true\nhost = "127.0.0.1"\nmqtt_port = 0\ncamera_port = 0\n'
            f'access_code = "{FACADE_CODE}"\ncamera_width = 640\ncamera_height = 360\ncamera_fps = 5\n\n'
            f'[storage]\npath = "{tmp_path}/bambupi.sqlite3"\n'
        )
        config, _ = load_config(path)
        running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        await wait_for(lambda: running.hub.printer("garage")["connection"] == "online", what="the X1C online")
        port = running.facade.camera_port("garage")
        assert port is not None
        apps = [PrinterCamera("127.0.0.1", FACADE_CODE, port=port) for _ in range(3)]  # more than an X1C serves
        for app in apps:
            app.start()
        try:
            await wait_for(lambda: all(app.last_frame is not None for app in apps), timeout=90,
                           what="frames from the X1C through the facade")
            for app in apps:
                frame = bytes(app.last_frame)
                assert is_jpeg(frame) and Image.open(io.BytesIO(frame)).size == (640, 360)
            assert sim.rtsps.clients <= 1 and running.frames.status("garage")["viewers"] == 1
        finally:
            for app in apps:
                await trio.to_thread.run_sync(app.stop)
        nursery.cancel_scope.cancel()
