"""A real mosquitto broker with TLS and a password file, for integration tests."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import trustme

SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")


def find_binary(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def require_mosquitto() -> tuple[str, str]:
    broker, passwd = find_binary("mosquitto"), find_binary("mosquitto_passwd")
    if broker is None or passwd is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed; .ci/run should have installed it")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return broker, passwd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """mosquitto on 127.0.0.1:<port> with TLS; restartable on the same port, optionally with a new certificate."""

    def __init__(self, folder: Path, users: dict[str, str]) -> None:
        self.binary, passwd = require_mosquitto()
        self.folder = folder
        self.port = free_port()
        self.ca = trustme.CA()
        self._write_cert(self.ca.issue_cert("01P00A000000001", "127.0.0.1"))
        pwfile = folder / "passwd"
        pwfile.touch()
        for user, password in users.items():
            subprocess.run([passwd, "-b", str(pwfile), user, password], check=True, capture_output=True)
        self.log = folder / "mosquitto.log"
        (folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"certfile {folder / 'cert.pem'}\n"
            f"keyfile {folder / 'key.pem'}\n"
            "tls_version tlsv1.2\n"
            f"password_file {pwfile}\n"
            "allow_anonymous false\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            # As root, mosquitto drops to user "mosquitto", who cannot read pytest's private tmp folder.
            f"user {getpass.getuser()}\n"
            f"log_dest file {self.log}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_cert(self, cert: trustme.LeafCert) -> None:
        self.cert = cert
        cert.private_key_pem.write_to_path(str(self.folder / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.folder / "cert.pem"))

    def new_certificate(self) -> None:
        """Like a firmware update: the same broker comes back with a different certificate (after restart)."""
        self._write_cert(trustme.CA().issue_cert("01P00A000000001", "127.0.0.1"))

    def start(self) -> None:
        os.environ.pop("MOSQUITTO_PORT", None)
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.folder / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30  # a hang bound: a loaded machine starts it slower
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                    return
            except OSError as exc:
                if self.proc.poll() is not None:
                    log = self.log.read_text() if self.log.exists() else ""
                    raise RuntimeError(f"mosquitto exited: {log}") from exc
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
