"""The printer's RTSPS camera as a plain RTSP stream on loopback, for exactly one local decoder that never learns
the access code.

The decoder (ffmpeg) is given ``rtsp://127.0.0.1:<random port>/<one-time token>/streaming/live/1``. The proxy:

* connects to the printer's port 322 over TLS with the context and pin check every connection to a printer uses
  (:mod:`bambupi.printer.tls_pins`) **before** the decoder is even started, so nothing goes to a device whose
  certificate is not the trusted one, and a closed port costs no decoder process;
* accepts one connection, and only from the decoder process it was opened for (the connecting socket must be one
  of that process's, checked in ``/proc``; the token guards where ``/proc`` cannot tell), then stops listening;
* forwards the decoder's requests with the printer's own URL (the printers' LIVE555 server redirects request lines
  that say ``rtsp://``: they must say ``rtsps://``), answers the printer's 401 challenge itself — Digest, as the
  printers ask (``realm="LIVE555 Streaming Media"``, Basic ignored), or Basic, as GStreamer's server can — and
  renumbers ``CSeq`` so the retried request stays invisible to the decoder;
* turns the printer's URLs in replies (``Content-Base``, the SDP's ``a=control``) back into local ones;
* passes the interleaved RTP/RTCP packets through untouched.

Everything that goes wrong ends up in :attr:`RtspsProxy.failure` as a :class:`CameraError` whose text is meant for
people and never holds the access code.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import trio

from bambupi.camera.source import CameraError
from bambupi.printer.tls_pins import CertificateRefused, TrustOnFirstUse, printer_tls_context
from bambupi.secret import Secret

log = logging.getLogger("bambupi.camera")

USER: Final = "bblp"
PATH: Final = "/streaming/live/1"
MAX_HEAD_BYTES: Final = 16 * 1024
MAX_BODY_BYTES: Final = 64 * 1024
LIVEVIEW_RETRY_S: Final = 120.0  # port 322 closed: "LAN Only Liveview" is off; no need to knock every few seconds
_RECEIVE_BYTES: Final = 64 * 1024
_MAX_PENDING: Final = 32  # requests sent and not answered yet
_URL_PREFIX = re.compile(r"rtsps?://[^/\s\"';,]+")  # scheme and authority (any user:password@ dropped with it)
_URL_HEADERS: Final = frozenset({"content-base", "content-location", "location", "rtp-info"})

_Relay = Callable[[trio.SocketStream], Awaitable[None]]


class RtspError(Exception):
    """The bytes on an RTSP connection are not RTSP (or exceed the limits)."""


# --- pure parts: messages, framing, authentication -----------------------------------------------------------------


@dataclass
class RtspMessage:
    """A request or response: start line, headers in order, body."""

    start: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_response(self) -> bool:
        return self.start.startswith("RTSP/")

    @property
    def status(self) -> int:
        """A response's status code (0 for a request or an unreadable one)."""
        parts = self.start.split(" ", 2)
        return int(parts[1]) if self.is_response and len(parts) > 1 and parts[1].isdigit() else 0

    @property
    def method(self) -> str:
        return "" if self.is_response else self.start.split(" ", 1)[0]

    @property
    def uri(self) -> str:
        parts = self.start.split(" ")
        return parts[1] if not self.is_response and len(parts) == 3 else ""

    def with_uri(self, uri: str) -> RtspMessage:
        method, _, version = self.start.split(" ")
        return RtspMessage(f"{method} {uri} {version}", list(self.headers), self.body)

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header with one (at the first one's place), or add it."""
        at = next((i for i, (key, _) in enumerate(self.headers) if key.lower() == name.lower()), len(self.headers))
        self.remove(name)
        self.headers.insert(min(at, len(self.headers)), (name, value))

    def remove(self, name: str) -> None:
        self.headers = [(key, value) for key, value in self.headers if key.lower() != name.lower()]

    def to_bytes(self) -> bytes:
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        if self.body or self.get("Content-Length") is not None:
            headers.append(("Content-Length", str(len(self.body))))
        head = "".join(f"{key}: {value}\r\n" for key, value in headers)
        return f"{self.start}\r\n{head}\r\n".encode() + self.body


Item = RtspMessage | bytes  # bytes: whole interleaved packets ('$', channel, length, data), as many as came in a row


class RtspReader:
    """Cuts a byte stream into RTSP messages and runs of whole interleaved packets (``$``, channel, 16-bit length,
    data), however the bytes arrive. Packets in a row come as one piece: they are passed on as they are, and a
    video stream is hundreds of packets a second. Raises :class:`RtspError` on a head over 16 KiB or a body over
    64 KiB."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray) -> list[Item]:
        self._buf += data
        items: list[Item] = []
        at = 0
        buf = self._buf
        run = -1  # where the current run of whole interleaved packets began
        while at < len(buf):
            if buf[at] == 0x24:  # '$'
                if len(buf) - at < 4:
                    break
                end = at + 4 + int.from_bytes(buf[at + 2 : at + 4], "big")
                if end > len(buf):
                    break
                run = at if run < 0 else run
                at = end
                continue
            if run >= 0:
                items.append(bytes(buf[run:at]))
                run = -1
            if buf[at] in (0x0D, 0x0A):  # a stray line ending between messages
                at += 1
                continue
            head_end = buf.find(b"\r\n\r\n", at)
            if head_end < 0:
                if len(buf) - at > MAX_HEAD_BYTES:
                    raise RtspError("an RTSP header over 16 KiB")
                break
            if head_end - at > MAX_HEAD_BYTES:
                raise RtspError("an RTSP header over 16 KiB")
            message = _parse_head(bytes(buf[at:head_end]))
            length = _content_length(message)
            body_end = head_end + 4 + length
            if body_end > len(buf):
                break
            message.body = bytes(buf[head_end + 4 : body_end])
            items.append(message)
            at = body_end
        if run >= 0:
            items.append(bytes(buf[run:at]))
        del buf[:at]
        return items


def _parse_head(head: bytes) -> RtspMessage:
    lines = head.decode("utf-8", "replace").split("\r\n")
    start = lines[0].strip()
    if not (start.startswith("RTSP/") or re.fullmatch(r"[A-Z_]+ \S+ RTSP/\d\.\d", start)):
        raise RtspError(f"not RTSP: {start[:60]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # a folded header continues the previous one
            key, value = headers[-1]
            headers[-1] = (key, f"{value} {line.strip()}")
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise RtspError(f"a malformed RTSP header line: {line[:60]!r}")
        headers.append((key.strip(), value.strip()))
    return RtspMessage(start, headers)


def _content_length(message: RtspMessage) -> int:
    value = message.get("Content-Length")
    if value is None:
        return 0
    if not value.isdigit():
        raise RtspError(f"a bad Content-Length: {value[:20]!r}")
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise RtspError(f"an RTSP body of {length} bytes (the limit is 64 KiB)")
    return length


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """``Digest realm="x", nonce="y"`` -> ("digest", {"realm": "x", "nonce": "y"})."""
    scheme, _, rest = value.strip().partition(" ")
    params = {
        match.group(1).lower(): match.group(2) if match.group(2) is not None else match.group(3)
        for match in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', rest)
    }
    return scheme.lower(), params


@dataclass
class Challenge:
    """How the camera asked to be logged in to; answers each request with a fresh ``Authorization``."""

    scheme: str  # "digest" | "basic"
    params: dict[str, str]
    count: int = 0  # Digest nonce count (qop=auth)

    @classmethod
    def pick(cls, values: list[str]) -> Challenge | None:
        """Digest when offered (the printers ask for it), else Basic; None when neither is."""
        offered = dict(parse_challenge(value) for value in values)
        if "digest" in offered and offered["digest"].get("nonce"):
            return cls("digest", offered["digest"])
        if "basic" in offered:
            return cls("basic", offered["basic"])
        return None

    def authorization(self, method: str, uri: str, password: str) -> str:
        if self.scheme == "basic":
            return "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode("ascii")
        self.count += 1
        return digest_authorization(self.params, method, uri, password, count=self.count)


def digest_authorization(
    params: dict[str, str], method: str, uri: str, password: str, *, count: int = 1, cnonce: str | None = None,
    user: str = USER,
) -> str:  # fmt: skip
    """RFC 2617 Digest (MD5 or MD5-sess, with or without ``qop=auth``); ``uri`` as written in the request line."""
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    algorithm = params.get("algorithm", "MD5")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    cnonce = cnonce or secrets.token_hex(8)
    ha1 = md5(f"{user}:{realm}:{password}")
    if algorithm.lower() == "md5-sess":
        ha1 = md5(f"{ha1}:{nonce}:{cnonce}")
    ha2 = md5(f"{method}:{uri}")
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in qops:
        nc = f"{count:08x}"
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{md5(f"{ha1}:{nonce}:{ha2}")}"')
    if "algorithm" in params:
        fields.append(f"algorithm={algorithm}")
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)


def rewrite_urls(text: str, base: str) -> str:
    """Every absolute ``rtsp(s)://authority`` in ``text`` replaced by ``base`` (the path after it kept)."""
    return _URL_PREFIX.sub(lambda _: base, text)


def socket_belongs_to(pid: int, listen_port: int, peer_port: int, proc: Path = Path("/proc")) -> bool | None:
    """Whether the loopback TCP connection from ``peer_port`` to ``listen_port`` is a socket of process ``pid``;
    None when ``/proc`` cannot tell (not Linux, or hidden)."""
    inodes: set[str] = set()
    try:
        for entry in os.scandir(proc / str(pid) / "fd"):
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return None
    found_table = False
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text("ascii", "replace").splitlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                local = int(fields[1].rsplit(":", 1)[1], 16)
                remote = int(fields[2].rsplit(":", 1)[1], 16)
            except (IndexError, ValueError):
                continue
            if local == peer_port and remote == listen_port and fields[9] in inodes:
                return True
    return False if found_table else None


# --- the proxy -----------------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    client_cseq: str | None
    request: RtspMessage  # as sent upstream, without Authorization
    authorized: bool
    tries: int = 1


class RtspsProxy:
    """One decoder's connection to one printer camera. Use :meth:`open` (connects to the printer), then
    :meth:`serve` while the decoder runs, then :meth:`aclose`.

    ``trust`` checks the printer's certificate before anything is sent and pins it once the camera accepted the
    access code (as the MQTT link and the port-6000 camera do)."""

    def __init__(
        self,
        host: str,
        port: int,
        access_code: Secret,
        *,
        trust: TrustOnFirstUse | None = None,
        connect_timeout_s: float = 10.0,
        accept_timeout_s: float = 15.0,
    ) -> None:
        self.host, self.port = host, port
        self._access_code = access_code
        self._trust = trust
        self._connect_timeout_s = connect_timeout_s
        self._accept_timeout_s = accept_timeout_s
        self._token = secrets.token_urlsafe(18)
        authority = f"[{host}]" if ":" in host else host
        self._upstream_base = f"rtsps://{authority}:{port}"
        self._upstream: trio.SSLStream[trio.SocketStream] | None = None
        self._listener: trio.SocketListener | None = None
        self._local_base = ""
        self._seen: str | None = None  # the certificate's fingerprint, pinned once the code was accepted
        self._challenge: Challenge | None = None
        self._pending: dict[int, _Pending] = {}
        self._cseq = 0
        self._send_lock = trio.Lock()
        self.failure: CameraError | None = None
        self.last_status: str | None = None  # the last refusal the camera sent, for the reason when ffmpeg gives up
        self.accepted_code = False

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """What the decoder opens: loopback, a random port, the one-time token; no secret."""
        return f"{self._local_base}{PATH}"

    async def open(self) -> None:
        """Connect to the printer (TLS, certificate check) and listen on loopback. Raises :class:`CameraError`."""
        try:
            with trio.fail_after(self._connect_timeout_s):
                tcp = await trio.open_tcp_stream(self.host, self.port)
                upstream = trio.SSLStream(tcp, printer_tls_context(), server_hostname=None)
                try:
                    await upstream.do_handshake()
                except BaseException:
                    await trio.aclose_forcefully(upstream)
                    raise
        except trio.TooSlowError:
            raise CameraError(f"timeout connecting to the camera at {self.where}") from None
        except OSError as exc:
            if _refused(exc):
                raise CameraError(
                    f'the camera at {self.where} refused the connection: is "LAN Only Liveview" on? Turn it on in '
                    "the printer's settings on its screen (X1: Settings → General)",
                    retry_s=LIVEVIEW_RETRY_S,
                ) from None
            raise CameraError(f"cannot connect to the camera at {self.where}: {_why(exc)}") from None
        except trio.BrokenResourceError as exc:
            raise CameraError(f"TLS with the camera at {self.where} failed: {_why(exc.__cause__ or exc)}") from None
        self._upstream = upstream
        if self._trust is not None:
            try:  # before a single byte goes to it
                self._seen = self._trust.check(upstream.getpeercert(binary_form=True), f"the camera at {self.where}")
            except CertificateRefused as refused:
                await self.aclose()
                raise CameraError(str(refused), retry_s=60.0) from None
        try:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=1)
        except OSError as exc:
            await self.aclose()
            raise CameraError(f"cannot open the local port for the camera's decoder: {_why(exc)}") from None
        self._listener = listeners[0]
        local_port = self._listener.socket.getsockname()[1]
        self._local_base = f"rtsp://127.0.0.1:{local_port}/{self._token}"

    async def aclose(self) -> None:
        for resource in (self._listener, self._upstream):
            if resource is not None:
                await trio.aclose_forcefully(resource)
        self._listener = self._upstream = None

    async def serve(self, decoder_pid: int | None) -> None:
        """Accept the decoder's connection, then relay until either side closes or something fails (then
        :attr:`failure` says what). Never raises but for cancellation."""
        try:
            client = await self._accept(decoder_pid)
            async with client, trio.open_nursery() as nursery:
                nursery.start_soon(self._then_cancel, self._from_decoder, client, nursery.cancel_scope)
                nursery.start_soon(self._then_cancel, self._from_camera, client, nursery.cancel_scope)
        except CameraError as exc:
            self.failure = exc
        finally:
            await self.aclose()

    async def _then_cancel(self, relay: _Relay, client: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            await relay(client)
        except CameraError as exc:
            self.failure = self.failure or exc
        except RtspError as exc:
            self.failure = self.failure or CameraError(f"bad data on the camera stream from {self.where}: {exc}")
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # one side went away: the decoder's end of stream says the rest
        finally:
            scope.cancel()

    async def _accept(self, decoder_pid: int | None) -> trio.SocketStream:
        assert self._listener is not None
        listen_port = self._listener.socket.getsockname()[1]
        with trio.move_on_after(self._accept_timeout_s):
            while True:
                client = await self._listener.accept()
                peer_port = client.socket.getpeername()[1]
                owner = None if decoder_pid is None else socket_belongs_to(decoder_pid, listen_port, peer_port)
                if owner is not False:
                    await self._listener.aclose()  # one decoder, one connection: nobody else gets in
                    self._listener = None
                    return client
                log.warning("the camera proxy for %s refused a local connection from another process", self.where)
                await trio.aclose_forcefully(client)
        raise CameraError(f"the decoder did not open the camera stream of {self.where} in time")

    async def _send_upstream(self, data: bytes) -> None:
        assert self._upstream is not None
        async with self._send_lock:
            await self._upstream.send_all(data)

    async def _from_decoder(self, client: trio.SocketStream) -> None:
        reader = RtspReader()
        while data := await client.receive_some(_RECEIVE_BYTES):
            for item in reader.feed(data):
                if isinstance(item, bytes):
                    await self._send_upstream(item)  # RTCP receiver reports
                    continue
                if item.is_response:
                    continue  # an answer to a request the camera sent: nothing here expects one
                await self._request(item)

    async def _request(self, request: RtspMessage, pending: _Pending | None = None) -> None:
        if pending is None:
            uri = request.uri
            if uri != "*" and not (uri == self._local_base or uri.startswith(self._local_base + "/")):
                raise CameraError(f"the camera proxy for {self.where} got a request for another address")
            upstream = request.with_uri(uri if uri == "*" else self._upstream_base + uri[len(self._local_base) :])
            upstream.remove("Authorization")
            pending = _Pending(request.get("CSeq"), upstream, authorized=False)
        outgoing = RtspMessage(pending.request.start, list(pending.request.headers), pending.request.body)
        if self._challenge is not None:
            outgoing.set(
                "Authorization",
                self._challenge.authorization(outgoing.method, outgoing.uri, self._access_code.reveal()),
            )
            pending.authorized = True
        self._cseq += 1
        outgoing.set("CSeq", str(self._cseq))
        self._pending[self._cseq] = pending
        while len(self._pending) > _MAX_PENDING:  # a camera that never answers keep-alives: forget the oldest
            del self._pending[next(iter(self._pending))]
        await self._send_upstream(outgoing.to_bytes())

    async def _from_camera(self, client: trio.SocketStream) -> None:
        assert self._upstream is not None
        reader = RtspReader()
        while True:
            try:
                data = await self._upstream.receive_some(_RECEIVE_BYTES)
            except trio.BrokenResourceError:
                data = b""  # the printer cut the stream without a TLS goodbye (a mid-stream cut)
            if not data:
                return
            for item in reader.feed(data):
                if isinstance(item, bytes):
                    await client.send_all(item)  # RTP/RTCP, untouched
                    continue
                message = await self._from_camera_message(item)
                if message is not None:
                    await client.send_all(message.to_bytes())

    async def _from_camera_message(self, message: RtspMessage) -> RtspMessage | None:
        """The reply for the decoder, or None when the proxy dealt with it (a login challenge)."""
        if not message.is_response:
            return self._localised(message)  # the camera's own request (rare): pass it on
        cseq = message.get("CSeq") or ""
        pending = self._pending.pop(int(cseq), None) if cseq.isdigit() else None
        if pending is None:
            return self._localised(message)
        if message.status == 401:
            await self._answer_challenge(message, pending)
            return None
        if 200 <= message.status < 300:
            if pending.authorized and not self.accepted_code:
                self.accepted_code = True
                if self._seen is not None and self._trust is not None:
                    self._trust.accept(self._seen)  # the camera took the access code: pin what it presented
        else:
            self.last_status = f"{message.status} {message.start.split(' ', 2)[-1]}".strip()
        if pending.client_cseq is None:
            message.remove("CSeq")
        else:
            message.set("CSeq", pending.client_cseq)
        return self._localised(message)

    async def _answer_challenge(self, message: RtspMessage, pending: _Pending) -> None:
        challenge = Challenge.pick(message.get_all("WWW-Authenticate"))
        if challenge is None:
            schemes = ", ".join(parse_challenge(v)[0] for v in message.get_all("WWW-Authenticate")) or "none"
            raise CameraError(f"the camera at {self.where} asks for a login bambupi does not speak ({schemes})")
        stale = challenge.params.get("stale", "").lower() == "true"
        if pending.authorized and not (stale and pending.tries < 3):
            raise CameraError(f"the camera at {self.where} refused the access code (RTSPS 401)")
        self._challenge = challenge
        pending.tries += 1
        await self._request(pending.request, pending)

    def _localised(self, message: RtspMessage) -> RtspMessage:
        """The camera's absolute URLs pointed at the proxy, so the decoder's next requests come here."""
        message.headers = [
            (key, rewrite_urls(value, self._local_base) if key.lower() in _URL_HEADERS else value)
            for key, value in message.headers
        ]
        if message.body and "sdp" in (message.get("Content-Type") or "").lower():
            message.body = rewrite_urls(message.body.decode("utf-8", "replace"), self._local_base).encode()
        return message


def _refused(exc: BaseException) -> bool:
    """A connection refused, also inside what trio.open_tcp_stream raises (one error per address tried)."""
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return True
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        return any(_refused(inner) for inner in cause.exceptions)
    return cause is not None and _refused(cause)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
