"""A small headless-Chromium driver speaking the Chrome DevTools Protocol over trio-websocket (no new dependency).

    async with chromium(tmp_path) as browser:
        page = await browser.new_page(width=390, height=844)
        await page.navigate("http://127.0.0.1:8080/")
        assert await page.wait_for("document.querySelector('article') !== null")
        await page.screenshot(ARTIFACTS / "dashboard.png")

Debian's package installs ``/usr/bin/chromium``; ``.ci/run`` installs it on CI.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def require_chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run should have installed it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return binary


class CdpError(Exception):
    pass


# What Chromium answers when the page it evaluated in navigated away meanwhile.
NAVIGATING = ("navigated or closed", "Execution context was destroyed", "Cannot find context")


class Page:
    """One tab, driven over its own DevTools WebSocket."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self.exceptions: list[str] = []  # uncaught JavaScript exceptions, for tests to assert on
        self.console: list[str] = []

    async def _read(self) -> None:
        while True:
            message = json.loads(await self._ws.get_message())
            if "id" in message:
                channel = self._waiting.pop(message["id"], None)
                if channel is not None:
                    channel.send_nowait(message)
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))
            elif message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[number] = send
        await self._ws.send_message(json.dumps({"id": number, "method": method, "params": params}))
        with trio.fail_after(20):
            reply = await receive.receive()
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.02) -> Any:
        """Poll ``expression`` until it is truthy; returns its value. Raises TooSlowError after ``timeout`` (a hang)."""
        with trio.fail_after(timeout):
            while True:
                try:
                    value = await self.evaluate(expression)
                except CdpError as exc:
                    # A navigation (a tapped link, a reload) replaced the document while we asked: ask the new one.
                    if not any(words in str(exc) for words in NAVIGATING):
                        raise
                    value = None
                if value:
                    return value
                await trio.sleep(interval)

    async def set_viewport(self, width: int, height: int) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=2, mobile=True
        )

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        # Bounds a hang only: a busy CI machine may take long to load a page.
        await self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout=60)

    async def screenshot(self, path: Path) -> Path:
        data = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path


class Browser:
    def __init__(self, port: int, nursery: trio.Nursery) -> None:
        self.port = port
        self._nursery = nursery

    async def new_page(self, *, width: int = 390, height: int = 844) -> Page:
        async with httpx.AsyncClient() as http:
            target = (await http.put(f"http://127.0.0.1:{self.port}/json/new?about:blank")).json()
        page_ws: WebSocketConnection = await self._nursery.start(_hold_websocket, target["webSocketDebuggerUrl"])
        page = Page(page_ws)
        self._nursery.start_soon(page._read)
        await page.send("Runtime.enable")
        await page.send("Page.enable")
        await page.set_viewport(width, height)
        return page


async def _hold_websocket(url: str, *, task_status: trio.TaskStatus[WebSocketConnection]) -> None:
    async with open_websocket_url(url, max_message_size=64 * 1024 * 1024) as ws:
        task_status.started(ws)
        await trio.sleep_forever()


@asynccontextmanager
async def chromium(profile: Path, extra_args: Sequence[str] = ()) -> AsyncIterator[Browser]:
    binary = require_chromium()
    profile.mkdir(parents=True, exist_ok=True)
    process = await trio.lowlevel.open_process(
        [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
            f"--user-data-dir={profile}", "--remote-debugging-port=0", *extra_args, "about:blank",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        with trio.fail_after(30):
            while not (active.exists() and active.read_text().count("\n") >= 1):
                if process.poll() is not None:
                    raise RuntimeError(f"chromium exited with {process.returncode}")
                await trio.sleep(0.05)
        port = int(active.read_text().splitlines()[0])
        async with trio.open_nursery() as nursery:
            yield Browser(port, nursery)
            nursery.cancel_scope.cancel()
    finally:
        process.terminate()
        with trio.move_on_after(5) as waited:
            await process.wait()
        if waited.cancelled_caught:
            process.kill()
            await process.wait()
