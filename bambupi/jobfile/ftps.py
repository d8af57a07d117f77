"""A blocking client for a printer's FTPS server: implicit TLS on port 990, user ``bblp``, the access code.

What the printers need (Bambuddy's and ha-bambulab's FTP clients, OpenBambuAPI): the data channel must resume the
control channel's TLS session (vsFTPd's ``require_ssl_reuse``), so :meth:`_ImplicitFtps.ntransfercmd` wraps each data
connection with ``session=`` the control socket's session. TLS is capped at 1.2 for every model: X1C and H2D accept
nothing else, a P2S and an X2D broke session reuse under TLS 1.3 (Bambuddy #1401, #1638), and every printer accepts
1.2, so one rule serves all. An A1's data channel may need to be plain (PROT C; Bambuddy falls back to it):
``plain_data`` asks for that, the control channel (and the access code) stays encrypted.

The server's certificate is checked against the printer's pin (the MQTT link's, :mod:`bambupi.printer.tls_pins`)
right after the handshake, before anything is sent. Nothing here pins: a printer without a pin yet is refused.

Used from one worker thread; :meth:`FtpsClient.abort` may be called from another (the deadline's watchdog) and makes
whatever the worker is blocked on fail at once.
"""

from __future__ import annotations

import contextlib
import ftplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Final

from bambupi.jobfile.threemf import JobFileError
from bambupi.printer.state import safe_text
from bambupi.printer.tls_pins import CertificateRefused, PinStore, TrustOnFirstUse, printer_tls_context
from bambupi.secret import Secret, redact

FTPS_PORT: Final = 990
USER: Final = "bblp"
CHUNK: Final = 64 * 1024
MB: Final = 1024 * 1024
OPERATION_TIMEOUT_S: Final = 30.0  # one socket operation; the whole fetch has its own deadline


@dataclass(frozen=True)
class FtpsTarget:
    """A printer's FTPS server. Its certificate must be the one pinned for ``printer_id`` (the MQTT link's pin, or the
    config's ``tls_fingerprint`` which takes precedence), the printers' one certificate for MQTT and FTPS alike."""

    host: str
    access_code: Secret
    serial: str
    pins: PinStore
    model: str
    printer_id: str
    configured_pin: str | None = None  # the config file's tls_fingerprint
    port: int = FTPS_PORT



class DataChannelError(JobFileError):
    """The data connection failed (refused, TLS, cut): on an A1 the plain data channel may still work."""


class FetchTimeout(JobFileError):
    """The fetch's deadline passed."""


class ScratchError(JobFileError):
    """The box's own disk (full, read-only) failed while it kept the job's file: not the printer's fault, so never a
    data channel's failure (which would also send an A1 to the plain data channel)."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(f"the box could not write the job's file to its disk ({exc.strerror or exc})")


class _ImplicitFtps(ftplib.FTP_TLS):
    """ftplib's FTP_TLS with TLS from the first byte (implicit FTPS) and data connections resuming the session."""

    def __init__(self, context: ssl.SSLContext, check: TrustOnFirstUse, where: str, plain_data: bool) -> None:
        super().__init__(context=context)
        self._check = check
        self._where = where
        self._plain_data = plain_data
        self.data_sock: socket.socket | None = None  # the open data connection, for abort()

    def connect(self, host: str = "", port: int = 0, timeout: float = -999, source_address: Any = None) -> str:
        self.host, self.port = host, port
        self.timeout = timeout
        raw = socket.create_connection((host, port), timeout)
        self.sock = raw  # closable by abort() during the handshake
        try:
            tls = self.context.wrap_socket(raw)
        except BaseException:
            raw.close()
            raise
        self.sock = tls
        self._check.check(tls.getpeercert(binary_form=True), self._where)
        self.af = tls.family
        self.file = tls.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        self.data_sock = conn
        if not self._plain_data:
            assert isinstance(self.sock, ssl.SSLSocket)
            conn = self.context.wrap_socket(conn, session=self.sock.session)
            self.data_sock = conn
        return conn, size


class FtpsClient:
    """One logged-in FTPS session with a printer. ``deadline`` is a :func:`time.monotonic` instant."""

    def __init__(self, target: FtpsTarget, *, deadline: float, plain_data: bool = False) -> None:
        self.target = target
        self.deadline = deadline
        self.plain_data = plain_data
        self.where = f"the printer's FTPS server ({target.host}:{target.port})"
        context = printer_tls_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        trust = TrustOnFirstUse(
            target.pins, target.printer_id, printer_id=target.printer_id, configured=target.configured_pin
        )
        self._trust = trust
        self._ftp = _ImplicitFtps(context, trust, self.where, plain_data)
        self._aborted = threading.Event()

    # --- the session ------------------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, check the certificate, log in and choose the data channel's protection."""
        if self._trust.trusted() is None:
            raise JobFileError(
                f"no certificate is pinned for {self.target.printer_id} yet (the printer link pins it when it first "
                f"connects); the access code was not sent to {self.where}"
            )
        self._call(lambda: self._ftp.connect(self.target.host, self.target.port, self._timeout()), "connect")
        try:
            self._ftp.login(USER, self.target.access_code.reveal())
        except ftplib.error_perm as exc:
            if str(exc).startswith("530"):
                raise JobFileError("FTPS refused the login (is the access code right?)") from None
            raise self._refused("the login", exc) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._failed("the login", exc) from None
        if self.plain_data:
            self._call(self._ftp.prot_c, "PROT C")
        else:
            self._call(self._ftp.prot_p, "PROT P")
        self._call(lambda: self._ftp.voidcmd("TYPE I"), "TYPE I")

    def size(self, path: str) -> int | None:
        """The file's size; None when the printer has no such file."""
        try:
            self._check_deadline()
            reply = self._ftp.sendcmd("SIZE " + path)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None
            raise self._refused("SIZE", exc) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._failed("SIZE", exc) from None
        code, _, value = reply.partition(" ")
        if code != "213" or not value.strip().isdigit():
            raise JobFileError(f"{self.where} answered SIZE with {self._quote(reply)}")
        return int(value.strip())

    def retrieve(self, path: str, out: IO[bytes], *, offset: int = 0, length: int | None = None,
                 max_bytes: int) -> int:  # fmt: skip
        """Write the file's bytes from ``offset`` to ``out``: ``length`` of them, or (None) all of them, refusing a
        file that turns out longer than ``max_bytes``. Returns the number of bytes written.

        A ranged read stops reading once it has its bytes and closes the data connection; the printer then reports
        the transfer aborted (426), which is expected.
        """
        want = length if length is not None else max_bytes + 1
        self._check_deadline()
        try:
            conn = self._ftp.transfercmd("RETR " + path, rest=offset or None)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                raise JobFileError(f"the printer no longer has {path}") from None
            if offset and str(exc)[:3] in {"500", "501", "502", "504"}:
                raise RangeRefused(self._quote(str(exc))) from None
            raise self._refused("RETR", exc) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._data_failed(exc) from None
        got = 0
        ended = False
        try:
            conn.settimeout(self._timeout())
            while got < want:
                self._check_deadline()
                chunk = conn.recv(min(CHUNK, want - got))
                if not chunk:
                    ended = True
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise ScratchError(exc) from None
                got += len(chunk)
            if ended and isinstance(conn, ssl.SSLSocket):
                conn.unwrap()  # vsFTPd wants the TLS close before it confirms the transfer
        except (OSError, EOFError) as exc:
            self._check_deadline()
            raise self._data_failed(exc) from None
        finally:
            conn.close()
            self._ftp.data_sock = None
        try:
            self._ftp.voidresp()
        except ftplib.error_temp:
            if ended:
                raise DataChannelError(f"{self.where} cut the transfer of {path} short") from None
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._failed("RETR", exc) from None
        if length is None and got > max_bytes:
            raise TooLarge(max_bytes, None)
        if length is not None and got < length:
            raise DataChannelError(f"{self.where} sent {got} of the {length} bytes asked for from {path}")
        return got

    def close(self) -> None:
        try:
            if not self._aborted.is_set() and self._ftp.file is not None:  # logged in or at least greeted
                self._ftp.quit()
        except (OSError, EOFError, ftplib.Error, ValueError):
            pass  # leaving anyway
        finally:
            self._ftp.close()

    def abort(self) -> None:
        """From any thread: shut the sockets down, so the worker blocked on them fails now (the deadline passed)."""
        self._aborted.set()
        for sock in (self._ftp.data_sock, self._ftp.sock):
            if sock is not None:
                with contextlib.suppress(OSError):  # not connected yet, or already closed
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, not SSLSocket's: no TLS state

    # --- failures in words ------------------------------------------------------------------------------------------

    def _timeout(self) -> float:
        return max(0.001, min(OPERATION_TIMEOUT_S, self.deadline - time.monotonic()))

    def _check_deadline(self) -> None:
        if self._aborted.is_set() or time.monotonic() >= self.deadline:
            raise FetchTimeout("FTPS timed out: the printer did not send the 3MF in time")

    def _call(self, step: Any, what: str) -> None:
        try:
            self._check_deadline()
            step()
        except CertificateRefused as exc:
            raise JobFileError(str(exc)) from None
        except ftplib.error_perm as exc:
            raise self._refused(what, exc) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._failed(what, exc) from None

    def _failed(self, what: str, exc: BaseException) -> JobFileError:
        self._check_deadline()
        if isinstance(exc, ConnectionRefusedError):
            return JobFileError(f"{self.where} refused the connection (FTPS is off, or this is not a printer)")
        if isinstance(exc, EOFError | ssl.SSLEOFError | ConnectionResetError | BrokenPipeError):
            return JobFileError(f"{self.where} closed the connection during {what}")
        if isinstance(exc, ssl.SSLError):
            return JobFileError(f"TLS with {self.where} failed ({exc.reason or type(exc).__name__})")
        if isinstance(exc, TimeoutError | socket.timeout):
            return FetchTimeout(f"FTPS timed out: {self.where} did not answer {what}")
        if isinstance(exc, OSError):
            return JobFileError(f"cannot reach {self.where} ({exc.strerror or type(exc).__name__})")
        return JobFileError(f"{self.where} answered {what} with {self._quote(str(exc))}")

    def _data_failed(self, exc: BaseException) -> JobFileError:
        self._check_deadline()
        if isinstance(exc, JobFileError):
            return exc
        return DataChannelError(f"the data connection with {self.where} failed ({self._failed('RETR', exc)})")

    def _refused(self, what: str, exc: ftplib.Error) -> JobFileError:
        return JobFileError(f"{self.where} refused {what}: {self._quote(str(exc))}")

    def _quote(self, reply: str) -> str:
        """A server reply fit for a reason: one line, short, and never the access code (a server may echo it)."""
        return repr(safe_text(redact(reply, self.target.access_code), max_chars=80))


class RangeRefused(JobFileError):
    """The server does not take REST offsets: read the whole file instead."""


class TooLarge(JobFileError):
    """The 3MF is larger than the limit; sizes in MB as ``[history] max_file_mb`` counts them (2**20 bytes)."""

    def __init__(self, max_bytes: int, size: int | None) -> None:
        limit = max_bytes / MB
        super().__init__(
            f"3MF too large ({size / MB:.0f} MB > {limit:.0f} MB)" if size is not None
            else f"3MF too large (more than {limit:.0f} MB)"
        )
