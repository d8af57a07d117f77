"""The job's 3MF over FTPS, end to end: bambupi/jobfile against the simulator's FTPS server (real TLS, the data channel
required to resume the control session), and each way it fails as a reason a person reads."""

from __future__ import annotations

import ftplib
import importlib.resources
import io
import logging
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from bambupi.jobfile.fetch import TAIL_BYTES, FtpsTarget, JobFileLimits, fetch_job_file
from bambupi.jobfile.ftps import FtpsClient
from bambupi.jobfile.threemf import JobFileError
from bambupi.printer.tls_pins import PinStore, fingerprint
from bambupi.secret import Secret
from bambupi.sim.ftps import FtpsServer
from bambupi.sim.simulator import Simulator
from bambupi.sim.threemf import SimFilament, make_3mf

CODE = "80313377"
SERIAL = "01P00A000000001"
STATE = {"gcode_file": "benchy.gcode.3mf", "subtask_name": "benchy"}
SIM_PIN = fingerprint(ssl.PEM_cert_to_DER_cert((importlib.resources.files("bambupi") / "data" / "sim-cert.pem")
                                               .read_text()))  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with trio.open_nursery() as nursery:
        simulator = Simulator("P1S", SERIAL, CODE, scenario="idle", ftps_port=0)
        await nursery.start(simulator.run)
        simulator.printer.start_print("benchy", minutes=42)
        yield simulator
        nursery.cancel_scope.cancel()


def target(tmp_path: Path, port: int, *, pin: str | None = SIM_PIN, code: str = CODE, model: str = "P1S") -> FtpsTarget:
    pins = PinStore(tmp_path / "tls-pins.json")
    if pin is not None:
        pins.set("garage", pin)
    return FtpsTarget("127.0.0.1", Secret(code), SERIAL, pins, model, "garage", port=port)


async def test_the_simulated_job_comes_with_its_filaments_grams_and_picture(sim: Simulator, tmp_path: Path) -> None:
    job = await fetch_job_file(target(tmp_path, sim.ftps_port or 0), STATE, scratch=tmp_path / "s",
                               limits=JobFileLimits())  # fmt: skip
    trays = sim.printer.state.ams[0].trays
    assert job.path == "/cache/benchy.3mf" and job.plate == 1 and job.predicted_s == 42 * 60
    assert [(f.index, f.material, f.colour) for f in job.filaments] == [
        (i + 1, t.tray_type, "#" + t.color[:6]) for i, t in enumerate(trays[:2]) if t is not None]  # fmt: skip
    assert sum(f.grams for f in job.filaments) == pytest.approx(42 * 60 / 42, abs=0.02)  # 1 % of 1 kg / 7 min
    assert job.thumbnail_png is not None and job.thumbnail_png.startswith(b"\x89PNG")
    assert sim.ftps is not None and sim.ftps.sessions_refused == 0
    assert list((tmp_path / "s").iterdir()) == []  # the temporary file is gone


async def served(nursery: trio.Nursery, files: dict[str, bytes]) -> tuple[FtpsServer, int]:
    from bambupi.sim.broker import server_ssl_context

    server = FtpsServer(CODE, server_ssl_context(), lambda: files)
    port: int = await nursery.start(server.serve, "127.0.0.1", 0)
    return server, port


def large_3mf() -> bytes:
    """A 3 MB 3MF whose metadata comes first, as Bambu Studio writes it, and a big model after."""
    small = zipfile.ZipFile(io.BytesIO(make_3mf([SimFilament(1, "PLA", "#FF0000", 12.5, "GFA00")], 3600)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in small.infolist():
            if info.filename.startswith("Metadata/"):
                archive.writestr(info.filename, small.read(info))
        archive.writestr("3D/3dmodel.model", os.urandom(3_000_000), compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


async def test_a_large_3mf_costs_its_tail_and_two_members_not_its_size(tmp_path: Path) -> None:
    data = large_3mf()
    async with trio.open_nursery() as nursery:
        server, port = await served(nursery, {"/cache/benchy.3mf": data})
        job = await fetch_job_file(target(tmp_path, port), STATE, scratch=tmp_path, limits=JobFileLimits())
        nursery.cancel_scope.cancel()
    assert [f.grams for f in job.filaments] == [12.5] and job.thumbnail_png is not None
    offsets = [offset for _, offset, _ in server.retrieved]
    assert offsets[0] == len(data) - TAIL_BYTES and len(offsets) == 3  # the tail, slice_info, the picture
    assert all(offset < 10_000 for offset in offsets[1:])  # the metadata at the start; never the model's bytes


async def test_a_server_without_offsets_gets_the_whole_file_read(tmp_path: Path) -> None:
    data = large_3mf()
    async with trio.open_nursery() as nursery:
        server, port = await served(nursery, {"/cache/benchy.3mf": data})
        server.set_fault("no_rest")
        job = await fetch_job_file(target(tmp_path, port), STATE, scratch=tmp_path / "s", limits=JobFileLimits())
        nursery.cancel_scope.cancel()
    assert [f.grams for f in job.filaments] == [12.5]
    assert server.retrieved == [("/cache/benchy.3mf", 0, len(data))]
    assert list((tmp_path / "s").iterdir()) == []


async def test_reading_a_whole_file_stops_past_the_limit(tmp_path: Path) -> None:
    """The limit holds while reading, not only by SIZE: a server may not say, or say wrong."""
    data = large_3mf()
    async with trio.open_nursery() as nursery:
        _, port = await served(nursery, {"/cache/benchy.3mf": data})

        def read() -> int:
            client = FtpsClient(target(tmp_path, port), deadline=time.monotonic() + 30)
            out = io.BytesIO()
            try:
                client.connect()
                with pytest.raises(JobFileError, match=r"^3MF too large \(more than 1 MB\)$"):
                    client.retrieve("/cache/benchy.3mf", out, max_bytes=1_000_000)
            finally:
                client.close()
            return len(out.getvalue())

        assert await trio.to_thread.run_sync(read) == 1_000_001  # one byte past the limit says it, no more is read
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "fault,reason",
    [
        ("off", r"^the printer's FTPS server \(127\.0\.0\.1:\d+\) closed the connection during connect$"),
        ("missing", r"^file not found on the printer \(tried /cache/benchy\.gcode\.3mf, /benchy\.gcode\.3mf, "
                    r"/cache/benchy\.3mf, /benchy\.3mf; is 'store sent files on external storage' on\?\)$"),
        ("too_large", r"^3MF too large \(1907 MB > 200 MB\)$"),
        ("malformed", r"^not a 3MF: the file is not a zip archive$"),
    ],
)
async def test_each_fault_is_its_reason(sim: Simulator, tmp_path: Path, fault: str, reason: str) -> None:
    assert sim.ftps is not None
    sim.ftps.set_fault(fault)
    with pytest.raises(JobFileError) as caught:
        await fetch_job_file(target(tmp_path, sim.ftps_port or 0), STATE, scratch=tmp_path / "s",
                             limits=JobFileLimits())  # fmt: skip
    assert re.match(reason, str(caught.value)), str(caught.value)
    assert list((tmp_path / "s").iterdir()) == [] if (tmp_path / "s").exists() else True


@pytest.mark.parametrize("model", ["A1", "A1 mini"])
async def test_an_a1_whose_protected_data_channel_fails_gets_a_plain_one(sim: Simulator, tmp_path: Path,
                                                                         model: str) -> None:  # fmt: skip
    assert sim.ftps is not None
    sim.ftps.set_fault("plain_data_only")
    job = await fetch_job_file(target(tmp_path, sim.ftps_port or 0, model=model), STATE, scratch=tmp_path / "s",
                               limits=JobFileLimits())  # fmt: skip
    assert job.path == "/cache/benchy.3mf" and job.filaments


async def test_other_models_keep_their_data_channel_protected(sim: Simulator, tmp_path: Path) -> None:
    assert sim.ftps is not None
    sim.ftps.set_fault("plain_data_only")
    with pytest.raises(JobFileError, match=r"^the data connection with the printer's FTPS server .* failed"):
        await fetch_job_file(target(tmp_path, sim.ftps_port or 0, model="P1S"), STATE, scratch=tmp_path / "s",
                             limits=JobFileLimits())  # fmt: skip
    assert sim.ftps.retrieved == []


async def test_a_printer_that_stops_answering_is_a_timeout_within_the_deadline(sim: Simulator, tmp_path: Path) -> None:
    """The server stalls after the login; the fetch's one deadline ends it (the reason is asserted, not the time)."""
    assert sim.ftps is not None
    sim.ftps.set_fault("stall")
    with trio.fail_after(30):  # bounds a hang only
        with pytest.raises(JobFileError, match=r"^FTPS timed out"):
            await fetch_job_file(target(tmp_path, sim.ftps_port or 0), STATE, scratch=tmp_path / "s",
                                 limits=JobFileLimits(deadline_s=0.5))  # fmt: skip


async def test_cancelling_the_fetch_ends_it(sim: Simulator, tmp_path: Path) -> None:
    assert sim.ftps is not None
    sim.ftps.set_fault("stall")
    with trio.move_on_after(0.3) as scope:
        await fetch_job_file(target(tmp_path, sim.ftps_port or 0), STATE, scratch=tmp_path / "s",
                             limits=JobFileLimits(deadline_s=600))  # fmt: skip
    assert scope.cancelled_caught


async def test_a_wrong_access_code_is_refused_and_never_shown(sim: Simulator, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    wrong = "55501234"
    with pytest.raises(JobFileError, match=r"^FTPS refused the login \(is the access code right\?\)$") as caught:
        await fetch_job_file(target(tmp_path, sim.ftps_port or 0, code=wrong), STATE, scratch=tmp_path / "s",
                             limits=JobFileLimits())  # fmt: skip
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert wrong not in text and CODE not in text


async def test_a_changed_certificate_is_refused_before_the_access_code_goes_out(sim: Simulator,
                                                                                tmp_path: Path) -> None:  # fmt: skip
    assert sim.ftps is not None
    with pytest.raises(JobFileError, match=r"^certificate changed: the printer's FTPS server .* the access code was "
                                           r"not sent"):  # fmt: skip
        await fetch_job_file(target(tmp_path, sim.ftps_port or 0, pin="sha256:" + "ab" * 32), STATE,
                             scratch=tmp_path / "s", limits=JobFileLimits())  # fmt: skip
    with pytest.raises(JobFileError, match=r"^no certificate is pinned for garage yet"):
        await fetch_job_file(target(tmp_path / "none", sim.ftps_port or 0, pin=None), STATE,
                             scratch=tmp_path / "s", limits=JobFileLimits())  # fmt: skip
    assert sim.ftps.passwords == 0


def test_a_data_connection_that_does_not_resume_the_session_is_refused(tmp_path: Path) -> None:
    """What a plain ftplib FTP_TLS client does (a fresh TLS session per data connection) fails here as on a printer:
    so the client passing above does resume its session."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server, port = await served(nursery, {"/cache/benchy.3mf": b"x" * 100})
            await trio.to_thread.run_sync(naive_retr, port)
            assert server.sessions_refused == 1 and server.retrieved == []
            nursery.cancel_scope.cancel()

    trio.run(main)


def naive_retr(port: int) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    ftp = ftplib.FTP_TLS(context=context, timeout=10)
    ftp.host = "127.0.0.1"
    ftp.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), 10))
    ftp.af, ftp.file = ftp.sock.family, ftp.sock.makefile("r", encoding="utf-8")
    ftp.welcome = ftp.getresp()
    ftp.login("bblp", CODE, secure=False)
    ftp.prot_p()
    with pytest.raises((ftplib.Error, OSError)):  # the TLS close, or the 522 after it, whichever comes first
        ftp.retrbinary("RETR /cache/benchy.3mf", lambda _: None)
    ftp.close()


async def test_bambupi_sim_serves_ftps_on_the_port_asked(tmp_path: Path) -> None:
    """The command line's --ftps-port: the printed line names the port, and the job's 3MF is there."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bambupi", "sim", "--mqtt-port", "0", "--ftps-port", "0", "--access-code", CODE,
         "--scenario", "idle"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = b""
        with trio.fail_after(30):  # bounds a hang only
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1)
                assert chunk, line
                line += chunk
        found = re.search(r", FTPS \(implicit TLS\) on 127\.0\.0\.1:(\d+)", line.decode())
        assert found, line
        state = {"gcode_file": "demo.gcode.3mf", "subtask_name": "demo"}
        with pytest.raises(JobFileError, match=r"^file not found on the printer"):  # idle: served, logged in, no file
            await fetch_job_file(target(tmp_path, int(found.group(1))), state, scratch=tmp_path / "s",
                                 limits=JobFileLimits())  # fmt: skip
    finally:
        proc.terminate()
        await proc.wait()
