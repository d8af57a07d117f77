"""The HTTP front door on real sockets: WSGI behind it, limits, timeouts, keep-alive and native takeover.

Worker threads run the WSGI app, so these tests use the real clock (no autojump_clock). They wait for states, never
for a speed: every time limit here bounds a hang, and the server's own timeouts are long except where a test is about
them, so the suite passes on a loaded machine.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import bottle
import httpx
import pytest
import trio
import trio_websocket

from bambupi.cli import RedactingFilter
from bambupi.config import (
    Config,
    NotifyConfig,
    PlugConfig,
    PrinterConfig,
    SystemConfig,
    WebConfig,
    config_secrets,
)
from bambupi.secret import MASK, Secret
from bambupi.web.frontdoor import (
    FrontDoor,
    NativeHandler,
    NativeRouter,
    ReplayStream,
    Request,
    split_target,
    wsgi_environ,
)

pytestmark = pytest.mark.timeout(90)

HANG_S = 30  # a limit only a hang reaches, even with the CPU busy elsewhere

# A read timeout no test reaches by being slow: a kept-alive connection is not closed under a loaded test's feet.
CONFIG = WebConfig(
    host="127.0.0.1", port=0, max_connections=50, max_body_bytes=1000, max_header_bytes=1024, read_timeout_s=HANG_S
)
SHORT = 0.5  # the read/send timeout of the tests about that timeout


def echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answers with the environ keys the tests care about and the body it read."""
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("the app broke")
    body = environ["wsgi.input"].read()
    keys = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_PROTOCOL")
    seen = {key: environ.get(key) for key in keys}
    seen.update({key: value for key, value in environ.items() if key.startswith(("HTTP_", "REMOTE_", "SERVER_"))})
    seen["body"] = body.decode("latin-1")
    payload = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Echo", "yes")])
    return [payload]


def bottle_app() -> bottle.Bottle:
    app = bottle.Bottle()

    @app.get("/hello/<name>")  # type: ignore[misc]
    def hello(name: str) -> str:
        bottle.response.status = 201
        bottle.response.set_header("X-Greeting", "hi")
        return f"hello {name}"

    return app


@asynccontextmanager
async def serving(
    app: Any = echo_app, config: WebConfig = CONFIG, native: NativeRouter | None = None
) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(FrontDoor(app, config, native=native).run)
        yield port
        nursery.cancel_scope.cancel()


async def read_to_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    with trio.fail_after(HANG_S):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return bytes(data)


async def raw_request(port: int, data: bytes) -> bytes:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(data)
        return await read_to_eof(stream)


def parse_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream of Content-Length-framed responses."""
    responses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        responses.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def assert_json_error(data: bytes, status: int) -> None:
    [(code, headers, body)] = parse_responses(data)
    assert code == status
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["status"] == status
    assert json.loads(body)["error"]


# --- pure parts ---------------------------------------------------------------------------------------------------


def test_split_target_decodes_path_as_latin1_and_keeps_query_raw() -> None:
    assert split_target(b"/a%20b/w%C3%B6rld?x=%41&y") == ("/a b/w\xc3\xb6rld", "x=%41&y")
    assert split_target(b"http://box:8080/api?q=1") == ("/api", "q=1")
    assert split_target(b"http://box") == ("/", "")


def test_wsgi_environ_maps_headers_per_pep3333() -> None:
    request = Request(
        method="POST",
        target="/x?a=1",
        path="/x",
        query="a=1",
        headers=(
            (b"host", b"box"),
            (b"content-type", b"text/plain"),
            (b"transfer-encoding", b"chunked"),
            (b"x-forwarded-for", b"1.2.3.4"),
            (b"x_forwarded_for", b"6.6.6.6"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"accept", b"text/html"),
            (b"accept", b"*/*"),
        ),
        http_version="1.1",
    )
    environ = wsgi_environ(request, b"abc", server=("127.0.0.1", 80), remote=("10.0.0.9", 5555))
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "3"
    assert environ["wsgi.input"].read() == b"abc"
    assert "HTTP_TRANSFER_ENCODING" not in environ  # the body is already de-chunked
    assert "HTTP_CONTENT_TYPE" not in environ
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"  # the underscore spoof is dropped
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_ACCEPT"] == "text/html, */*"
    assert environ["REMOTE_ADDR"] == "10.0.0.9"
    assert environ["SERVER_PORT"] == "80"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert request.header("Content-Type") == "text/plain"
    assert request.header("X-Missing") is None


# --- WSGI over real sockets -------------------------------------------------------------------------------------


async def test_get_returns_app_status_headers_and_body() -> None:
    async with serving(bottle_app()) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get("/hello/w%C3%B6rld")
        assert response.status_code == 201
        assert response.headers["x-greeting"] == "hi"
        assert response.text == "hello wörld"  # PATH_INFO reached Bottle as PEP 3333 latin-1
        head = await client.head("/hello/you")
        assert head.status_code == 201
        assert head.content == b""
        assert head.headers["content-length"] == str(len("hello you"))


async def test_environ_carries_request_details() -> None:
    async with serving() as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get("/p%2Fq?token=1&b=%20", headers={"X-Thing": "v"})
    seen = response.json()
    assert response.headers["x-echo"] == "yes"
    assert seen["REQUEST_METHOD"] == "GET"
    assert seen["PATH_INFO"] == "/p/q"
    assert seen["QUERY_STRING"] == "token=1&b=%20"
    assert seen["HTTP_X_THING"] == "v"
    assert seen["HTTP_HOST"] == f"127.0.0.1:{port}"
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert seen["SERVER_PORT"] == str(port)
    assert seen["REMOTE_ADDR"] == "127.0.0.1"


async def test_keep_alive_serves_two_requests_on_one_connection() -> None:
    async with serving() as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        first = (await client.get("/one")).json()
        second = (await client.get("/two")).json()
    assert (first["PATH_INFO"], second["PATH_INFO"]) == ("/one", "/two")
    assert first["REMOTE_PORT"] == second["REMOTE_PORT"]  # same client socket


async def test_pipelined_requests_and_connection_close_are_honoured() -> None:
    async with serving() as port:
        data = await raw_request(
            port,
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    [(status_a, _, body_a), (status_b, headers_b, body_b)] = parse_responses(data)  # then EOF: closed
    assert (status_a, status_b) == (200, 200)
    assert json.loads(body_a)["PATH_INFO"] == "/a"
    assert json.loads(body_b)["PATH_INFO"] == "/b"
    assert headers_b["connection"] == "close"


async def test_http_1_0_is_served_and_closed() -> None:
    async with serving() as port:
        data = await raw_request(port, b"GET /old HTTP/1.0\r\n\r\n")
    [(status, _, body)] = parse_responses(data)
    assert status == 200
    assert json.loads(body)["SERVER_PROTOCOL"] == "HTTP/1.0"


async def test_post_body_reaches_wsgi_input_plain_and_chunked() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"chunk-1 ", b"chunk-2"):
            yield part

    async with serving() as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        plain = (await client.post("/up", content=b"x=1&y=2", headers={"Content-Type": "text/plain"})).json()
        chunked = (await client.post("/up", content=chunks())).json()
    assert plain["body"] == "x=1&y=2"
    assert plain["CONTENT_TYPE"] == "text/plain"
    assert plain["CONTENT_LENGTH"] == "7"
    assert chunked["body"] == "chunk-1 chunk-2"
    assert chunked["CONTENT_LENGTH"] == "15"


async def test_expect_100_continue_gets_interim_response() -> None:
    async with serving() as port, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        with trio.fail_after(HANG_S):
            interim = await stream.receive_some(1000)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await stream.send_all(b"body")
        await stream.send_eof()
        [(status, _, body)] = parse_responses(await read_to_eof(stream))
    assert status == 200
    assert json.loads(body)["body"] == "body"


# --- limits and refusals -----------------------------------------------------------------------------------------


async def test_413_by_content_length_without_reading_the_body() -> None:
    async with serving() as port:
        data = await raw_request(port, b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    assert_json_error(data, 413)


async def test_413_while_chunked_body_overflows() -> None:
    chunk = b"1f4\r\n" + b"a" * 500 + b"\r\n"  # 500 bytes each, limit 1000, never terminated
    async with serving() as port:
        data = await raw_request(
            port, b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3
        )
    assert_json_error(data, 413)


@pytest.mark.parametrize("ending", [b"\r\n\r\n", b""], ids=["complete-head", "endless-head"])
async def test_431_for_huge_headers(ending: bytes) -> None:
    async with serving() as port:
        data = await raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 3000 + ending)
    assert_json_error(data, 431)


async def test_400_for_garbage() -> None:
    async with serving() as port:
        data = await raw_request(port, b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")
    assert_json_error(data, 400)


async def test_app_exception_is_500_json_logged_once_and_next_request_works(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bambupi.web")
    async with serving() as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        broken = await client.get("/boom")
        after = await client.get("/fine")
    assert broken.status_code == 500
    assert broken.headers["content-type"] == "application/json"
    assert broken.json() == {"error": "internal server error", "status": 500}
    assert after.json()["PATH_INFO"] == "/fine"
    failures = [record for record in caplog.records if record.exc_info]
    assert len(failures) == 1
    assert "the app broke" in str(failures[0].exc_info[1])  # type: ignore[index]


async def test_a_route_that_raises_is_logged_through_the_log_filters_never_raw_to_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    secret = Secret("123456:bot-token-secret")
    app = bottle.Bottle(catchall=True)

    @app.get("/fail")  # type: ignore[misc]
    def fail() -> str:
        raise RuntimeError(f"POST https://api.telegram.org/bot{secret.reveal()}/sendMessage failed")

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter([secret]))  # what `bambupi run` installs
    logger = logging.getLogger("bambupi")
    logger.addHandler(handler)
    try:
        async with serving(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/fail")
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 500
    # Bottle writes the traceback to wsgi.errors: it reaches the log (and its filters), not the bare stderr.
    assert "RuntimeError" in out.getvalue() and f"bot{MASK}/sendMessage" in out.getvalue()
    captured = capfd.readouterr()
    assert secret.reveal() not in out.getvalue() + captured.out + captured.err


def test_the_log_masks_every_secret_of_the_current_config_in_messages_and_tracebacks() -> None:
    def config(token: str) -> Config:
        plug = PlugConfig(kind="homeassistant", address="http://127.0.0.1:9", token=Secret("ha-plug-token"))
        printer = PrinterConfig(id="p", name="p", model="P1S", host="127.0.0.1", serial="01P00A000000001",
                                access_code=Secret("12345678"), plug=plug)
        return Config(
            printers=(printer,),
            notify=(
                NotifyConfig(name="n", kind="ntfy", topic="t", token=Secret(token)),
                NotifyConfig(name="d", kind="discord", url="https://discord.com/api/webhooks/1/discord-key"),
                NotifyConfig(name="w", kind="webhook", url="http://127.0.0.1:9/h", secret=Secret("hmac-key")),
            ),
            system=SystemConfig(wifi_ssid="home", wifi_country="GB", wifi_password=Secret("wifi-password")),
            web=WebConfig(admin_password_hash=Secret("scrypt$16384$8$1$c2FsdHNhbHQ=$ZGlnZXN0ZGlnZXN0ZGlnZXN0")),
        )

    current = [config("tk_first")]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter(lambda: config_secrets(current[0])))
    logger = logging.getLogger("bambupi.test-redaction")
    logger.addHandler(handler)
    secrets = ["12345678", "ha-plug-token", "tk_first", "https://discord.com/api/webhooks/1/discord-key", "hmac-key",
               "wifi-password", "scrypt$16384$8$1$c2FsdHNhbHQ=$ZGlnZXN0ZGlnZXN0ZGlnZXN0"]
    try:
        logger.error("message: %s", " ".join(secrets))
        try:
            raise RuntimeError(f"traceback: {' '.join(secrets)}")
        except RuntimeError:
            logger.exception("failed")
        current[0] = config("tk_second")  # a new token saved on the settings page meanwhile
        logger.error("new token: %s", "tk_second")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "message: ********" in text and "RuntimeError: traceback: ********" in text
    assert "new token: ********" in text
    assert [s for s in [*secrets, "discord-key", "tk_second"] if s in text] == []


async def test_access_log_omits_query_string(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bambupi.web")
    async with serving() as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        await client.get("/api/thing?token=hunter2")
    lines = [record.getMessage() for record in caplog.records]
    assert any("/api/thing" in line and " 200 " in line for line in lines)
    assert not any("hunter2" in line for line in lines)


# --- slow clients do not stall others ------------------------------------------------------------------------------


async def drip_forever(stream: trio.SocketStream) -> None:
    """A slowloris: one byte of an endless header line every 50 ms, until the server closes or the test ends."""
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: ")
    try:
        while True:
            await stream.send_all(b"a")
            await trio.sleep(0.05)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the server cut it off


async def test_slowloris_does_not_stall_others() -> None:
    # Its head would time out only after HANG_S: a server that waited for it would fail the fail_after below.
    async with (
        serving() as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        await trio.open_tcp_stream("127.0.0.1", port) as slow,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(drip_forever, slow)
        with trio.fail_after(HANG_S / 2):
            assert (await client.get("/meanwhile")).status_code == 200
        nursery.cancel_scope.cancel()


async def test_slowloris_is_cut_off_after_the_read_timeout_for_the_whole_head() -> None:
    config = WebConfig(host="127.0.0.1", port=0, read_timeout_s=SHORT)
    async with serving(config=config) as port, trio.open_nursery() as nursery:
        started = trio.current_time()  # before the server can have accepted it
        slow = await trio.open_tcp_stream("127.0.0.1", port)
        nursery.start_soon(drip_forever, slow)
        # A timeout per byte would never fire while the drip goes on: read_to_eof would hang.
        answer = await read_to_eof(slow)
        assert trio.current_time() - started > SHORT * 0.8  # not cut before its time
        nursery.cancel_scope.cancel()
    await slow.aclose()
    assert_json_error(answer, 408)


async def test_oversized_upload_does_not_stall_another_client() -> None:
    async with (
        serving() as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        await trio.open_tcp_stream("127.0.0.1", port) as uploader,
    ):
        await uploader.send_all(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        # 300 of the 1000 allowed bytes, then the upload is mid-flight (its read times out only after HANG_S)
        await uploader.send_all((b"64\r\n" + b"u" * 100 + b"\r\n") * 3)
        with trio.fail_after(HANG_S / 2):
            assert (await client.get("/meanwhile")).status_code == 200
        await uploader.send_all((b"64\r\n" + b"u" * 100 + b"\r\n") * 10)
        assert_json_error(await read_to_eof(uploader), 413)


async def test_connections_beyond_the_limit_get_503_until_a_slot_frees() -> None:
    config = WebConfig(host="127.0.0.1", port=0, max_connections=2, read_timeout_s=HANG_S * 2)
    request = b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n"
    async with serving(config=config) as port:
        held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
        for stream in held:  # a full answer proves the server holds this connection in a slot
            await stream.send_all(request)
            with trio.fail_after(HANG_S):
                assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200 ")
        assert_json_error(await raw_request(port, request), 503)
        await held[0].aclose()
        with trio.fail_after(HANG_S):
            while True:  # the server frees the slot once it reads the EOF
                [(status, _, _)] = parse_responses(await raw_request(port, request[:-2] + b"Connection: close\r\n\r\n"))
                if status == 200:
                    break
                await trio.sleep(0.02)
        await held[1].aclose()


async def test_client_that_stops_reading_is_dropped_after_the_send_timeout() -> None:
    big = b"z" * (32 * 1024 * 1024)  # far beyond what loopback socket buffers absorb

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        # The next client asks for a small answer: the whole of one must be sent within the send timeout, and
        # 32 MB in SHORT seconds is a speed only an idle machine has.
        return [big if environ["PATH_INFO"] == "/big" else b"small"]

    config = WebConfig(host="127.0.0.1", port=0, max_connections=1, read_timeout_s=SHORT)
    request = b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    async with serving(app, config) as port, await trio.open_tcp_stream("127.0.0.1", port) as stuck:
        started = trio.current_time()  # before the server can have started sending
        await stuck.send_all(request)  # and never reads: its slot is held until the send times out
        with trio.fail_after(HANG_S):
            while True:
                reply = await raw_request(port, b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if reply.startswith(b"HTTP/1.1 200 "):
                    break
                assert_json_error(reply, 503)
                await trio.sleep(0.05)
        assert trio.current_time() - started > SHORT * 0.8  # the slot was held until the send timed out
    assert parse_responses(reply)[0][2] == b"small"


async def test_upgrade_request_no_native_route_takes_goes_to_wsgi() -> None:
    upgrade = b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    async with serving() as port:
        data = await raw_request(port, upgrade + b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    [(first, _, body), (second, _, _)] = parse_responses(data)
    assert (first, second) == (200, 200)
    assert json.loads(body)["PATH_INFO"] == "/plain"


async def test_cancelling_run_closes_listener_and_connections() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(FrontDoor(echo_app, CONFIG).run)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(HANG_S):
            assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200 ")
        nursery.cancel_scope.cancel()
    assert await read_to_eof(stream) == b""  # the kept-alive connection was closed
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)
    await stream.aclose()


# --- native takeover ----------------------------------------------------------------------------------------------


async def test_native_handler_takes_over_the_raw_stream() -> None:
    seen: list[tuple[Request, bytes]] = []

    async def raw_handler(stream: trio.abc.Stream, request: Request, replay: bytes) -> None:
        seen.append((request, replay))
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstraight from trio")

    def router(request: Request) -> NativeHandler | None:
        return raw_handler if request.path == "/native" else None

    head = b"GET /native?k=v HTTP/1.1\r\nHost: x\r\nX-Mode: raw\r\n\r\n"
    async with serving(native=router) as port:
        data = await raw_request(port, head + b"extra bytes")  # the front door closed it after the handler
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/other")).json()["PATH_INFO"] == "/other"  # WSGI still serves the rest
    assert data == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstraight from trio"
    [(request, replay)] = seen
    assert (request.method, request.path, request.query) == ("GET", "/native", "k=v")
    assert request.header("x-mode") == "raw"
    assert replay.startswith(head)  # the head as read, then whatever followed it in the same reads


async def test_websocket_upgrade_end_to_end() -> None:
    async def websocket_handler(stream: trio.abc.Stream, request: Request, replay: bytes) -> None:
        async with trio.open_nursery() as nursery:
            ws_request = await trio_websocket.wrap_server_stream(nursery, ReplayStream(stream, replay))
            ws = await ws_request.accept()
            message = await ws.get_message()
            await ws.send_message(f"echo {message} at {ws_request.path}")
            await ws.aclose()

    def router(request: Request) -> NativeHandler | None:
        upgrade = (request.header("upgrade") or "").lower()
        return websocket_handler if request.path == "/ws" and upgrade == "websocket" else None

    async with (
        serving(native=router) as port,
        trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/ws") as ws,
    ):
        await ws.send_message("hello")
        with trio.fail_after(HANG_S):
            assert await ws.get_message() == "echo hello at /ws"
