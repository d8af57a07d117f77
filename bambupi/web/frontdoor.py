"""The one HTTP port: a small trio server built on h11 that reads each request head and routes it.

Every connection is its own task. The request head and body are read under one deadline
(``WebConfig.read_timeout_s``), so a client that trickles a byte at a time is cut off; heads are capped at
``max_header_bytes`` (431) and bodies at ``max_body_bytes`` (413, by Content-Length up front or while a chunked body
streams in). A request the ``native`` router claims (``/ws`` upgrades, MJPEG streams) gets the raw stream and runs in
trio; everything else goes to the WSGI app (the Bottle API) in a worker thread under a ``CapacityLimiter``, with the
whole response collected in that thread and sent with a Content-Length under a send timeout.

Connection limits: at most ``max_connections`` connections are served at once (native streams count), and at most
``max_connections_per_client`` from one address, so a slowloris from one machine cannot take every slot. A
connection beyond either is still accepted, answered at once with 503 and closed, so a phone sees an error instead
of hanging in the kernel's backlog.

Names: with ``box_names``, a request whose ``Host`` is not one of the box's own names is answered 421 and closed,
on every route (DNS rebinding: a page whose name was re-pointed at the box sends its own name as Host).

Example::

    door = FrontDoor(bottle_app, WebConfig(host="127.0.0.1", port=0), native=route_native)
    port = await nursery.start(door.run)
"""

from __future__ import annotations

import errno
import io
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import h11
import trio

from bambupi.config import WebConfig

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo

log = logging.getLogger("bambupi.web")

_RECEIVE_BYTES = 64 * 1024
# After refusing a request, keep reading (and discarding) briefly before closing: closing a socket with unread
# input makes the kernel send RST, which can destroy the error response before the client reads it.
_LINGER_S = 1.0
# The server frames every response itself; these from the app would contradict that framing.
_APP_HEADERS_DROPPED = frozenset({b"connection", b"content-length", b"keep-alive", b"transfer-encoding", b"upgrade"})
# accept() errors that mean "out of resources right now", not "the listener is broken" (as trio.serve_listeners).
_ACCEPT_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ERROR_MESSAGES = {
    400: "malformed request",
    421: "open the box by its address or its own name",
    408: "request timeout",
    413: "request body too large",
    431: "request header fields too large",
    500: "internal server error",
    503: "too many connections",
}


@dataclass(frozen=True)
class Request:
    """A request head as the router sees it. Header names are lower-case bytes, in the order received."""

    method: str
    target: str  # as sent (path and query, ASCII)
    path: str  # percent-decoded, each byte as one latin-1 character (PEP 3333)
    query: str  # undecoded, may carry secrets: never log it
    headers: tuple[tuple[bytes, bytes], ...]
    http_version: str  # "1.1" or "1.0"

    def header(self, name: str) -> str | None:
        """Case-insensitive lookup; repeated headers are joined with ", "."""
        key = name.lower().encode("latin-1")
        values = [value.decode("latin-1") for field, value in self.headers if field == key]
        return ", ".join(values) if values else None

    @classmethod
    def from_h11(cls, event: h11.Request) -> Request:
        path, query = split_target(event.target)
        return cls(
            method=event.method.decode("ascii"),
            target=event.target.decode("ascii"),
            path=path,
            query=query,
            headers=tuple((bytes(name), bytes(value)) for name, value in event.headers),
            http_version=event.http_version.decode("ascii"),
        )


# The handler owns the stream until it returns; the bytes are everything already read from the socket for this
# request: the raw head as received plus anything the client sent after it. Replay them to a protocol that parses
# the head itself (``wrap_server_stream(nursery, ReplayStream(stream, replay))``); an MJPEG handler ignores them.
NativeHandler = Callable[[trio.abc.Stream, Request, bytes], Awaitable[None]]
NativeRouter = Callable[[Request], NativeHandler | None]


class ReplayStream(trio.abc.Stream):
    """A stream that first yields bytes already read from ``stream``, then reads on from it."""

    def __init__(self, stream: trio.abc.Stream, replay: bytes) -> None:
        self._stream = stream
        self._replay = replay

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._replay:
            size = len(self._replay) if max_bytes is None else max_bytes
            chunk, self._replay = self._replay[:size], self._replay[size:]
            await trio.lowlevel.checkpoint()
            return chunk
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


def split_target(target: bytes) -> tuple[str, str]:
    """Split a request target into (percent-decoded path, raw query string), both as latin-1 text."""
    raw_path, _, query = target.partition(b"?")
    if not raw_path.startswith(b"/") and b"://" in raw_path:  # absolute-form, as sent to proxies
        after_scheme = raw_path.split(b"://", 1)[1]
        slash = after_scheme.find(b"/")
        raw_path = after_scheme[slash:] if slash >= 0 else b"/"
    return unquote_to_bytes(raw_path).decode("latin-1"), query.decode("latin-1")


def wsgi_environ(request: Request, body: bytes, *, server: tuple[str, int], remote: tuple[str, int]) -> WSGIEnvironment:
    """The PEP 3333 environ for a request whose whole body has been read."""
    environ: WSGIEnvironment = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": request.path,
        "QUERY_STRING": request.query,
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
        "REMOTE_ADDR": remote[0],
        "REMOTE_PORT": str(remote[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": _ErrorLog(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in request.headers:
        text = value.decode("latin-1")
        if name == b"content-type":
            environ["CONTENT_TYPE"] = text
            continue
        # The body is already de-chunked and measured (Bottle would try to de-chunk it again); a name with "_"
        # would collide with its "-" twin in the environ, letting a client spoof a header a proxy vetted.
        if name in (b"content-length", b"transfer-encoding") or b"_" in name:
            continue
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        separator = "; " if name == b"cookie" else ", "
        environ[key] = environ[key] + separator + text if key in environ else text
    return environ


class _ErrorLog(io.TextIOBase):
    """``wsgi.errors``: what the app writes there (Bottle: the traceback of a route that raised) goes to the log, and
    through the filters of its handlers (which mask known secrets), never straight to stderr."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text.strip():
            log.error("web app error: %s", text.rstrip())
        return len(text)


def error_body(status: int, message: str | None = None) -> bytes:
    message = message or _ERROR_MESSAGES.get(status) or HTTPStatus(status).phrase.lower()
    return json.dumps({"error": message, "status": status}, separators=(",", ":")).encode()


def closing_error_response(status: int, message: str | None = None) -> bytes:
    """A complete error response written by hand: after a protocol error h11's state may not allow sending one,
    and a native handler (``/ws``) that refuses a request has no h11 connection at all."""
    body = error_body(status, message)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass(frozen=True)
class _WsgiResult:
    status: str
    headers: list[tuple[str, str]]
    body: bytes


def _run_wsgi(app: WSGIApplication, environ: WSGIEnvironment) -> _WsgiResult:
    """Call the app and drain its iterable, all in the worker thread (an app may compute lazily while iterated)."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        # Nothing is sent before the app finishes, so a second call with exc_info may always replace the first.
        if started and exc_info is None:
            raise RuntimeError("start_response called twice without exc_info")
        started[:] = [(status, headers)]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("WSGI app returned without calling start_response")
    status, headers = started[0]
    return _WsgiResult(status, headers, b"".join(chunks))


def _h11_response(result: _WsgiResult, *, head_only: bool) -> tuple[h11.Response, bytes]:
    """Frame the app's response; raises h11.LocalProtocolError or ValueError when the app's status/headers are bad."""
    code = int(result.status[:3])
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in result.headers]
    body = result.body
    kept = [(name, value) for name, value in headers if name.lower() not in _APP_HEADERS_DROPPED]
    if code in (204, 304):
        body = b""
    elif head_only:
        # A HEAD answer announces the length a GET would have; Bottle sets it and sends no body.
        lengths = [value for name, value in headers if name.lower() == b"content-length"]
        kept.append((b"content-length", lengths[0] if lengths else str(len(body)).encode()))
        body = b""
    else:
        kept.append((b"content-length", str(len(body)).encode()))
    response = h11.Response(status_code=code, headers=kept, reason=result.status[4:].encode("latin-1"))
    return response, body


def _error_response(status: int) -> tuple[h11.Response, bytes]:
    body = error_body(status)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return h11.Response(status_code=status, headers=headers), body


class _Refusal(Exception):
    """The request cannot be served; answer with this status and close the connection."""

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _Peer:
    server: tuple[str, int]
    remote: tuple[str, int]


def _address(sockaddr: Any) -> tuple[str, int]:
    return str(sockaddr[0]), int(sockaddr[1])


async def _next_event(stream: trio.abc.ReceiveStream, conn: h11.Connection, raw: bytearray | None) -> object:
    """The next h11 event (or PAUSED), reading as needed; every byte read is also appended to ``raw``."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await stream.receive_some(_RECEIVE_BYTES)
        if raw is not None:
            raw += data
        conn.receive_data(bytes(data))  # b"" tells h11 the peer closed


async def _linger_close(stream: trio.SocketStream) -> None:
    with trio.move_on_after(_LINGER_S):
        try:
            await stream.send_eof()
            while await stream.receive_some(_RECEIVE_BYTES):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    await trio.aclose_forcefully(stream)


class FrontDoor:
    """Serves ``wsgi_app`` and the ``native`` routes on ``config.host:config.port``; see the module docstring."""

    def __init__(
        self,
        wsgi_app: WSGIApplication,
        config: WebConfig,
        *,
        native: NativeRouter | None = None,
        box_names: Callable[[str], bool] | None = None,
        wsgi_threads: int = 8,
    ) -> None:
        self._app = wsgi_app
        self._config = config
        self._native = native
        self._box_names = box_names
        self._limiter = trio.CapacityLimiter(wsgi_threads)
        self._active = 0
        self._per_client: dict[str, int] = {}
        self._rejecting = 0
        self._saturated = False
        self.port = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; cancelling closes the listeners and every connection."""
        listeners = await trio.open_tcp_listeners(self._config.port, host=self._config.host)
        if self._config.port == 0:
            # A name resolving to several addresses would get a different free port on each: serve the first only.
            for extra in listeners[1:]:
                extra.socket.close()
            listeners = listeners[:1]
        self.port = _address(listeners[0].socket.getsockname())[1]
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept, listener, nursery)
            log.debug("front door listening on %s:%d", self._config.host, self.port)
            task_status.started(self.port)

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_RESOURCE_ERRNOS:
                        raise
                    log.error("cannot accept HTTP connections: %s; retrying", errno.errorcode[exc.errno])
                    await trio.sleep(0.1)
                    continue
                self._dispatch(stream, nursery)

    async def serves(self, path: str, *, timeout_s: float) -> bool:
        """True when the app answers ``GET path`` with 200 within ``timeout_s``: the watchdog's probe. It takes a
        worker thread like every request, but no connection slot, so clients holding every slot (a slowloris) do
        not make systemd restart a box that works."""
        request = Request("GET", path, path, "", ((b"host", b"localhost"),), "1.1")
        environ = wsgi_environ(request, b"", server=("localhost", self.port), remote=("127.0.0.1", 0))
        with trio.move_on_after(timeout_s):
            try:
                result = await trio.to_thread.run_sync(
                    _run_wsgi, self._app, environ, limiter=self._limiter, abandon_on_cancel=True
                )
            except Exception:
                log.exception("the health check failed")
                return False
            return result.status.startswith("200")
        return False

    def _dispatch(self, stream: trio.SocketStream, nursery: trio.Nursery) -> None:
        limit = self._config.max_connections
        try:
            client = _address(stream.socket.getpeername())[0]
        except OSError:  # reset before we looked
            stream.socket.close()
            return
        held = self._per_client.get(client, 0)
        if self._active < limit and held < self._config.max_connections_per_client:
            self._active += 1
            self._per_client[client] = held + 1
            self._saturated = False
            nursery.start_soon(self._connection, stream, client)
            return
        message = None
        if self._active < limit:
            message = "too many connections from your address"
            log.debug("%s holds %d connections; refusing another with 503", client, held)
        elif not self._saturated:
            log.warning("HTTP connection limit (%d) reached; refusing new connections with 503", limit)
            self._saturated = True
        if self._rejecting < limit:
            self._rejecting += 1
            nursery.start_soon(self._reject, stream, message)
        else:  # a flood: not even a 503 for these
            stream.socket.close()

    async def _reject(self, stream: trio.SocketStream, message: str | None) -> None:
        try:
            with trio.move_on_after(_LINGER_S):
                await stream.send_all(closing_error_response(503, message))
            await _linger_close(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._rejecting -= 1
            await trio.aclose_forcefully(stream)

    async def _connection(self, stream: trio.SocketStream, client: str) -> None:
        try:
            peer = _Peer(_address(stream.socket.getsockname()), _address(stream.socket.getpeername()))
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._config.max_header_bytes)
            while await self._exchange(stream, conn, peer):
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away mid-exchange: nobody is left to answer
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            self._active -= 1
            self._per_client[client] -= 1
            if not self._per_client[client]:
                del self._per_client[client]
            await trio.aclose_forcefully(stream)

    async def _exchange(self, stream: trio.SocketStream, conn: h11.Connection, peer: _Peer) -> bool:
        """Serve one request; True when the connection stays open for the next one."""
        started_at = trio.current_time()
        raw = bytearray(conn.trailing_data[0])  # a pipelined request may already be buffered
        handler: NativeHandler | None = None
        try:
            with trio.fail_after(self._config.read_timeout_s):
                event = await _next_event(stream, conn, raw)
                if not isinstance(event, h11.Request):
                    return False  # the client closed between requests
                if len(raw) - len(conn.trailing_data[0]) > self._config.max_header_bytes:
                    raise _Refusal(431)  # h11 only checks incomplete heads; a whole one can arrive in one read
                request = Request.from_h11(event)
                self._check_head(request)
                if self._native is not None:
                    handler = self._native(request)
                if handler is None:
                    body = await self._read_body(stream, conn, request)
        except trio.TooSlowError:
            # An idle keep-alive connection just closes; a half-sent request learns why.
            await self._refuse(stream, 408 if raw else None, peer)
            return False
        except h11.RemoteProtocolError as exc:
            await self._refuse(stream, exc.error_status_hint, peer)  # its message may quote header values: not logged
            return False
        except _Refusal as refusal:
            await self._refuse(stream, refusal.status, peer, refusal.message)
            return False

        if handler is not None:
            self._access(peer, request, "native", started_at)
            await handler(stream, request, bytes(raw))
            return False

        environ = wsgi_environ(request, body, server=peer.server, remote=peer.remote)
        try:
            result = await trio.to_thread.run_sync(_run_wsgi, self._app, environ, limiter=self._limiter)
            response, payload = _h11_response(result, head_only=request.method == "HEAD")
        except Exception:
            log.exception("web app failed on %s %s", request.method, request.target.partition("?")[0])
            response, payload = _error_response(500)
        out = conn.send(response) + (conn.send(h11.Data(data=payload)) if payload else b"")
        out += conn.send(h11.EndOfMessage())
        with trio.move_on_after(self._config.read_timeout_s) as send_scope:
            await stream.send_all(out)
        self._access(peer, request, str(response.status_code), started_at)
        if send_scope.cancelled_caught:
            log.debug("%s stopped reading; closing", peer.remote[0])
            return False
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            return True
        await _linger_close(stream)
        return False

    def _check_head(self, request: Request) -> None:
        """Refuse what no route may see: an ambiguous body length, and a name that is not the box's."""
        if request.header("content-length") is not None and request.header("transfer-encoding") is not None:
            # RFC 9112 6.3: a proxy in between may frame the body by the other header; where this request ends,
            # and so what the next one is, is not known. Answer and close.
            raise _Refusal(400, "both Content-Length and Transfer-Encoding: ambiguous body length")
        host = request.header("host")
        # A browser always sends Host (h11 requires it of HTTP/1.1); only an HTTP/1.0 tool may leave it out.
        if self._box_names is not None and host is not None and not self._box_names(host):
            raise _Refusal(421, "open the box by its address (http://<ip address>/) or its own name "
                                "(http://<host name>.local/): it answers to no other name")

    async def _read_body(self, stream: trio.SocketStream, conn: h11.Connection, request: Request) -> bytes:
        limit = self._config.max_body_bytes
        declared = request.header("content-length")
        if declared is not None and int(declared) > limit:  # h11 has checked it is one number
            raise _Refusal(413)
        if conn.they_are_waiting_for_100_continue:
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        while True:
            event = await _next_event(stream, conn, None)
            if not isinstance(event, h11.Data):
                # EndOfMessage, or PAUSED after an Upgrade request that no native route took
                return bytes(body)
            body += event.data
            if len(body) > limit:
                raise _Refusal(413)

    async def _refuse(
        self, stream: trio.SocketStream, status: int | None, peer: _Peer, message: str | None = None
    ) -> None:
        if status is not None:
            log.debug("%s refused with %d", peer.remote[0], status)
            with trio.move_on_after(self._config.read_timeout_s):
                await stream.send_all(closing_error_response(status, message))
        await _linger_close(stream)

    @staticmethod
    def _access(peer: _Peer, request: Request, outcome: str, started_at: float) -> None:
        # The path only: query strings and bodies can carry secrets.
        log.debug(
            '%s "%s %s HTTP/%s" %s %.1f ms',
            peer.remote[0],
            request.method,
            request.target.partition("?")[0],
            request.http_version,
            outcome,
            (trio.current_time() - started_at) * 1000,
        )
