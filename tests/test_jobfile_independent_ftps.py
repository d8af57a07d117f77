"""The FTPS client (bambupi/jobfile) against an FTPS server bambupi did not write: pyftpdlib's TLS handler (pyOpenSSL),
made implicit as a printer's is, serving a real 3MF from a folder. The simulator's server and the client share their
author's reading of the protocol; this one does not."""

from __future__ import annotations

import importlib.resources
import os
import ssl
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer

from bambupi.jobfile.fetch import FtpsTarget, JobFileLimits, fetch_job_file
from bambupi.jobfile.threemf import JobFileError
from bambupi.printer.tls_pins import PinStore, fingerprint
from bambupi.secret import Secret
from bambupi.sim.threemf import SimFilament, make_3mf

CODE = "31415926"
DATA = importlib.resources.files("bambupi") / "data"
PIN = fingerprint(ssl.PEM_cert_to_DER_cert((DATA / "sim-cert.pem").read_text()))
FILAMENTS = [SimFilament(1, "PLA", "#FFFFFF", 3.0, "GFA00"), SimFilament(3, "PETG", "#FF6A13", 9.5, "GFG02")]


class ImplicitTls(TLS_FTPHandler):  # type: ignore[misc]
    """TLS from the first byte, then the banner: implicit FTPS, like a printer on port 990."""

    def handle(self) -> None:
        self.secure_connection(self.ssl_context)

    def handle_ssl_established(self) -> None:
        TLS_FTPHandler.handle(self)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    root = tmp_path / "printer"
    (root / "cache").mkdir(parents=True)
    (root / "cache" / "lid.3mf").write_bytes(make_3mf(FILAMENTS, 1234))
    with zipfile.ZipFile(root / "cache" / "lid.3mf", "a") as archive:  # a model after the metadata: read by offsets
        archive.writestr("3D/Objects/lid.model", os.urandom(300_000), compress_type=zipfile.ZIP_STORED)
    authorizer = DummyAuthorizer()
    authorizer.add_user("bblp", CODE, str(root), perm="elr")
    with importlib.resources.as_file(DATA / "sim-cert.pem") as cert, importlib.resources.as_file(
        DATA / "sim-key.pem"
    ) as key:

        class Handler(ImplicitTls):
            certfile = str(cert)
            keyfile = str(key)
            ssl_context = None
            tls_control_required = True
            tls_data_required = True

        Handler.authorizer = authorizer
        Handler.get_ssl_context()
        ftpd = FTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=ftpd.serve_forever, kwargs={"timeout": 0.1, "blocking": True}, daemon=True)
    thread.start()
    try:
        yield ftpd.address[1]
    finally:
        ftpd.close_all()
        thread.join(10)


def target(tmp_path: Path, port: int, code: str = CODE) -> FtpsTarget:
    pins = PinStore(tmp_path / "pins.json")
    pins.set("shelf", PIN)
    return FtpsTarget("127.0.0.1", Secret(code), "01S00A000000001", pins, "X1C", "shelf", port=port)


async def test_the_job_file_is_read_from_an_independent_ftps_server(server: int, tmp_path: Path) -> None:
    state = {"gcode_file": "/data/Metadata/plate_1.gcode", "subtask_name": "lid"}
    with trio.fail_after(30):  # bounds a hang only
        job = await fetch_job_file(target(tmp_path, server), state, scratch=tmp_path / "s", limits=JobFileLimits())
    assert job.path == "/cache/lid.3mf" and job.plate == 1 and job.predicted_s == 1234
    assert [(f.index, f.material, f.grams) for f in job.filaments] == [(1, "PLA", 3.0), (3, "PETG", 9.5)]
    assert job.thumbnail_png is not None and list((tmp_path / "s").iterdir()) == []


async def test_its_refusals_are_reasons(server: int, tmp_path: Path) -> None:
    with trio.fail_after(30), pytest.raises(JobFileError, match=r"^FTPS refused the login"):
        await fetch_job_file(target(tmp_path, server, code="00000000"), {"subtask_name": "lid"},
                             scratch=tmp_path / "s", limits=JobFileLimits())  # fmt: skip
    with trio.fail_after(30), pytest.raises(JobFileError, match=r"^file not found on the printer \(tried /cache/gone"):
        await fetch_job_file(target(tmp_path, server), {"subtask_name": "gone"}, scratch=tmp_path / "s",
                             limits=JobFileLimits())  # fmt: skip
