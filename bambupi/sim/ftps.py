"""The simulated printer's FTPS server: implicit TLS, user ``bblp`` and the access code, like a printer's vsFTPd.

It speaks what a client fetching a job's 3MF uses: USER, PASS, PBSZ, PROT, TYPE, PASV/EPSV, SIZE, REST, RETR, NLST,
PWD, NOOP, QUIT. Like a printer with ``require_ssl_reuse``, a protected data connection that does not resume the
control connection's TLS session is refused ("522 SSL connection failed: session reuse required"), so a client that
passes here reuses its session. Files come from ``files()`` (path -> bytes), asked at each command.

``fault`` plays the trouble a client must survive: ``"off"`` (the connection is closed at once, as if FTPS were off),
``"missing"`` (no files: "store sent files" off), ``"too_large"`` (SIZE says 2 GB), ``"malformed"`` (every file is
not a zip), ``"stall"`` (after the login nothing is answered), ``"no_rest"`` (REST offsets refused),
``"plain_data_only"`` (a protected data connection is dropped before its handshake, as some A1 firmware does).
"""

from __future__ import annotations

import hmac
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Final

import trio

log = logging.getLogger(__name__)

FAULTS: Final = frozenset({"off", "missing", "too_large", "malformed", "stall", "no_rest", "plain_data_only"})
LINE_MAX: Final = 1024
IDLE_TIMEOUT_S: Final = 60.0
DATA_TIMEOUT_S: Final = 10.0
CHUNK: Final = 32 * 1024
MALFORMED: Final = b"this is not a zip archive\n" * 40


class FtpsServer:
    def __init__(
        self, access_code: str, ssl_context: ssl.SSLContext, files: Callable[[], Mapping[str, bytes]]
    ) -> None:
        self._access_code = access_code.encode("utf-8")
        self._context = ssl_context
        self._files = files
        self.fault: str | None = None
        self.host = "127.0.0.1"
        self.sessions_refused = 0  # data connections refused for not resuming the session
        self.passwords = 0  # PASS commands received: a client that refused the certificate sends none
        self.retrieved: list[tuple[str, int, int]] = []  # (path, offset, bytes sent) per RETR, for tests

    def set_fault(self, fault: str | None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown FTPS fault {fault!r}; choose one of: {', '.join(sorted(FAULTS))}")
        self.fault = fault

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.host = host
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        if self.fault == "off":
            await stream.aclose()
            return
        tls = trio.SSLStream(stream, self._context, server_side=True)
        try:
            with trio.fail_after(DATA_TIMEOUT_S):
                await tls.do_handshake()
            await _Session(self, tls).run()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, ssl.SSLError, OSError):
            pass  # the client went away or misbehaved: its session ends, the server goes on
        finally:
            await trio.aclose_forcefully(tls)

    def files(self) -> Mapping[str, bytes]:
        if self.fault == "missing":
            return {}
        if self.fault == "malformed":
            return {path: MALFORMED for path in self._files()}
        return self._files()

    def password_ok(self, password: bytes) -> bool:
        return hmac.compare_digest(password, self._access_code)


class _Session:
    """One control connection."""

    def __init__(self, server: FtpsServer, tls: trio.SSLStream[trio.SocketStream]) -> None:
        self.server = server
        self.tls = tls
        self.buffer = b""
        self.user_ok = False
        self.logged_in = False
        self.protected = False
        self.rest = 0
        self.passive: trio.SocketListener | None = None

    async def reply(self, line: str) -> None:
        await self.tls.send_all(line.encode("utf-8") + b"\r\n")

    async def readline(self) -> bytes | None:
        while b"\n" not in self.buffer:
            if len(self.buffer) > LINE_MAX:
                return None
            with trio.fail_after(IDLE_TIMEOUT_S):
                data = await self.tls.receive_some(4096)
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r")

    async def run(self) -> None:
        await self.reply("220 bambupi simulator FTPS ready")
        try:
            while (line := await self.readline()) is not None:
                verb, _, argument = line.decode("utf-8", "replace").partition(" ")
                if not await self.command(verb.upper(), argument):
                    return
        finally:
            if self.passive is not None:
                await self.passive.aclose()

    async def command(self, verb: str, argument: str) -> bool:
        server = self.server
        if verb == "QUIT":
            await self.reply("221 Goodbye.")
            return False
        if verb == "USER":
            self.user_ok = argument == "bblp"
            await self.reply("331 Please specify the password.")
        elif verb == "PASS":
            server.passwords += 1
            if self.user_ok and server.password_ok(argument.encode("utf-8")):
                self.logged_in = True
                await self.reply("230 Login successful.")
            else:
                await self.reply("530 Login incorrect.")
        elif not self.logged_in:
            await self.reply("530 Please login with USER and PASS.")
        elif server.fault == "stall":
            await trio.sleep_forever()
        elif verb == "PBSZ":
            await self.reply("200 PBSZ set to 0.")
        elif verb == "PROT":
            self.protected = argument.upper() == "P"
            await self.reply(f"200 PROT now {'Private' if self.protected else 'Clear'}.")
        elif verb == "TYPE":
            await self.reply("200 Switching to Binary mode.")
        elif verb in {"NOOP", "PWD"}:
            await self.reply('257 "/"' if verb == "PWD" else "200 NOOP ok.")
        elif verb in {"PASV", "EPSV"}:
            if self.passive is not None:
                await self.passive.aclose()
            self.passive = (await trio.open_tcp_listeners(0, host=server.host))[0]
            port = self.passive.socket.getsockname()[1]
            if verb == "EPSV":
                await self.reply(f"229 Entering Extended Passive Mode (|||{port}|).")
            else:
                address = server.host.replace(".", ",")
                await self.reply(f"227 Entering Passive Mode ({address},{port >> 8},{port & 0xFF}).")
        elif verb == "SIZE":
            data = server.files().get(argument)
            if data is None:
                await self.reply("550 Could not get file size.")
            else:
                await self.reply(f"213 {2_000_000_000 if server.fault == 'too_large' else len(data)}")
        elif verb == "REST":
            if server.fault == "no_rest":
                await self.reply("502 REST not implemented.")
            elif not argument.isdigit():
                await self.reply("501 Bad REST offset.")
            else:
                self.rest = int(argument)
                await self.reply(f"350 Restart position accepted ({self.rest}).")
        elif verb == "RETR":
            await self.retrieve(argument)
        elif verb == "NLST":
            folder = argument.rstrip("/") + "/" if argument else "/"
            names = [p[len(folder):] for p in server.files() if p.startswith(folder) and "/" not in p[len(folder):]]
            await self.send_data("\r\n".join(names).encode("utf-8") + (b"\r\n" if names else b""), what="NLST")
        else:
            await self.reply(f"502 {verb or '?'} not implemented.")
        return True

    async def retrieve(self, path: str) -> None:
        offset, self.rest = self.rest, 0
        data = self.server.files().get(path)
        if data is None:
            await self.reply("550 Failed to open file.")
            return
        sent = await self.send_data(data[offset:], what=f"RETR {path}")
        if sent is not None:
            self.server.retrieved.append((path, offset, sent))

    async def send_data(self, payload: bytes, *, what: str) -> int | None:
        """Send ``payload`` over the passive data connection; the bytes sent, or None when it failed."""
        if self.passive is None:
            await self.reply("425 Use PASV or EPSV first.")
            return None
        listener, self.passive = self.passive, None
        try:
            with trio.move_on_after(DATA_TIMEOUT_S) as waited:
                conn = await listener.accept()
        finally:
            await listener.aclose()
        if waited.cancelled_caught:
            await self.reply("425 Failed to establish connection.")
            return None
        await self.reply("150 Opening BINARY mode data connection.")
        stream: trio.abc.Stream = conn
        if self.protected and self.server.fault == "plain_data_only":
            await trio.aclose_forcefully(conn)
            await self.reply("426 Failure writing network stream.")
            return None
        if self.protected:
            tls = trio.SSLStream(conn, self.server._context, server_side=True)
            try:
                with trio.fail_after(DATA_TIMEOUT_S):
                    await tls.do_handshake()
            except (trio.BrokenResourceError, trio.TooSlowError, ssl.SSLError):
                await trio.aclose_forcefully(tls)
                await self.reply("522 SSL connection failed.")
                return None
            if not tls.session_reused:
                self.server.sessions_refused += 1
                log.info("simulated FTPS: %s refused: the data connection did not resume the TLS session", what)
                await trio.aclose_forcefully(tls)
                await self.reply("522 SSL connection failed: session reuse required")
                return None
            stream = tls
        sent = 0
        try:
            with trio.fail_after(DATA_TIMEOUT_S * 6):
                for start in range(0, len(payload), CHUNK):
                    await stream.send_all(payload[start : start + CHUNK])
                    sent += len(payload[start : start + CHUNK])
                await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, ssl.SSLError, OSError):
            await trio.aclose_forcefully(stream)
            await self.reply("426 Failure writing network stream.")
            return sent
        await self.reply("226 Transfer complete.")
        return sent
