"""A small Chrome DevTools Protocol client for browser tests: launches headless Chromium,
drives its one page over the protocol with aiohttp, and always kills the browser.

Every wait has a deadline, so a hung browser fails the test in seconds instead of hanging it."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest

LAUNCH_TIMEOUT = 20.0
COMMAND_TIMEOUT = 15.0
_DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")


def find_chromium() -> str:
    """The Chromium binary; skips the test when there is none, unless
    ``RALIGN_REQUIRE_CHROMIUM`` is set (CI sets it, so a missing browser fails there)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    message = "needs Chromium for the browser tests: apt-get install chromium"
    if os.environ.get("RALIGN_REQUIRE_CHROMIUM"):
        pytest.fail(message)
    pytest.skip(message)


class Page:
    """One browser page: protocol commands, script evaluation, navigation and screenshots.
    Its methods are synchronous (they run the protocol on the page's own event loop)."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    def _run(self, coroutine: Any, timeout: float = COMMAND_TIMEOUT) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(coroutine, timeout))

    async def _connect(self) -> None:
        self._http = aiohttp.ClientSession()
        async with self._http.get(f"http://127.0.0.1:{self._port}/json") as response:
            targets = await response.json(content_type=None)
        target = next(t for t in targets if t.get("type") == "page")
        # max_msg_size=0: screenshots arrive as one large base64 message.
        self._ws = await self._http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)

    def connect(self) -> None:
        self._run(self._connect(), LAUNCH_TIMEOUT)

    async def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._ws is not None
        command_id = next(self._ids)
        await self._ws.send_json({"id": command_id, "method": method, "params": params})
        while True:  # events (no id) and stale replies are skipped
            message = await self._ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"DevTools connection closed while waiting for {method}")
            reply = json.loads(message.data)
            if reply.get("id") == command_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One protocol command; its result."""
        return self._run(self._send(method, params))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited); a script
        error fails the test."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise AssertionError(f"script error in the page: {text}\n{expression}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {expression}")
            time.sleep(0.05)

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait until the document has finished loading."""
        self.send("Page.navigate", url=url)
        target = json.dumps(url.split("#", 1)[0])
        # A fragment is compared out: the page may rewrite its hash once loaded.
        self.wait_for(
            f"location.href.split('#')[0] === {target} && document.readyState === 'complete'"
        )

    def set_viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Lay the page out at exactly ``width`` x ``height`` CSS pixels."""
        self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height,
            deviceScaleFactor=1, mobile=mobile,
        )  # fmt: skip

    def screenshot(self) -> bytes:
        """The visible part of the page as PNG bytes."""
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        async def shut() -> None:
            if self._ws is not None:
                await self._ws.close()
            if self._http is not None:
                await self._http.close()

        with suppress(Exception):  # the browser is killed next in any case
            self._run(shut(), 5.0)
        self._loop.close()


def _devtools_url(process: subprocess.Popen[str]) -> str:
    """The ``ws://`` URL Chromium prints on stderr; a thread reads stderr (so its pipe never
    fills) and hands lines over, so the wait has a deadline."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(
                f"Chromium did not start within {LAUNCH_TIMEOUT:.0f} s:\n{''.join(seen)[-2000:]}"
            ) from None
        if line is None:
            raise AssertionError(f"Chromium exited at startup:\n{''.join(seen)[-2000:]}")
        seen.append(line)
        match = _DEVTOOLS_LINE.search(line)
        if match:
            return match.group(1)


@contextmanager
def chromium(profile_dir: Path, window: tuple[int, int] = (1280, 900)) -> Iterator[Page]:
    """A headless Chromium showing ``about:blank``, as a connected :class:`Page`."""
    command = [
        find_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--hide-scrollbars",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile_dir}",
        f"--window-size={window[0]},{window[1]}",
        "about:blank",
    ]
    # A session of its own: Debian's chromium is a wrapper script with the browser as its
    # child, so the whole process group is killed at the end.
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    page: Page | None = None
    try:
        port = urlparse(_devtools_url(process)).port
        assert port, "no port in Chromium's DevTools URL"
        page = Page(port)
        page.connect()
        # Headless Chromium's viewport is smaller than --window-size (it keeps room for window
        # decorations): pin it, so screenshots are exactly the window's size.
        page.set_viewport(*window)
        yield page
    finally:
        if page is not None:
            page.close()
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
