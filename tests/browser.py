"""A real headless browser for tests: Debian's Chromium driven over the DevTools protocol.

`open_page` loads a file or URL, lets its JavaScript run, and returns what a person would
see (a PNG screenshot), what the page became (the DOM after scripts ran, the final URL) and
every network request it made, so a test can say "this report loads nothing from the
internet" or "the MLflow UI lands on the runs table". The protocol runs over the pipe
Chromium opens on fds 3 and 4 (`--remote-debugging-pipe`): no port, no websocket client.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = "install it with `sudo apt-get install chromium` (Debian/Ubuntu) or `make browser`"
# Not network traffic: inline data, in-memory blobs, the blank page itself.
NOT_NETWORK = ("data:", "blob:", "about:")


@dataclass(frozen=True)
class Page:
    """What the browser made of a page."""

    url: str  # location.href once the page settled (after any client-side redirect)
    dom: str  # document.documentElement.outerHTML after JavaScript ran
    screenshot: Path
    # URLs fetched, in order, once each: not the page, nor data: URIs; for an http page also
    # the favicon Chromium asks its server for.
    requests: list[str]
    console_errors: list[str] = field(default_factory=list)


def find_chromium() -> str | None:
    """The Chromium (or Chrome) binary on PATH, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str:
    """Chromium's path; installed from Debian's packages when absent and we may (root with
    apt-get), else the calling test is skipped with how to install it."""
    path = find_chromium()
    if path:
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"Chromium is not installed: {INSTALL_HINT}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        "apt-get update -qq && apt-get install -y -qq chromium",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
    )
    path = find_chromium()
    if done.returncode != 0 or path is None:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"installing Chromium failed ({last[0]}): {INSTALL_HINT}")
    return path


def is_blank(png: Path, tolerance: int = 8) -> bool:
    """True if the image is (nearly) one colour: every channel within `tolerance` levels."""
    from PIL import Image

    with Image.open(png) as image:
        extrema = image.convert("RGB").getextrema()
    return all(high - low <= tolerance for low, high in extrema)


def open_page(target: str | Path, screenshot: Path, **options: Any) -> Page:
    """Load `target` (a file path or an http(s)/file URL) in headless Chromium, wait for its
    load event, then until the JavaScript expression `wait_for` is truthy (at most
    `timeout_s`), then `wait_ms` more; screenshot it to `screenshot` and return the Page
    (options: `_Browser.visit`'s)."""
    with chromium() as open_tab:
        return open_tab(target, screenshot, **options)


@contextlib.contextmanager
def chromium() -> Iterator[Callable[..., Page]]:
    """One Chromium for several pages: yields `open_page` without the start-up, each page in a
    new tab of the same profile (so a second page of a site may come from the cache)."""
    binary = ensure_chromium()
    profile = tempfile.TemporaryDirectory(prefix="lakeml-chromium-")
    with profile, _Browser(binary, Path(profile.name)) as browser:
        yield browser.visit


def _as_url(target: str | Path) -> str:
    text = str(target)
    if text.startswith(("http://", "https://", "file://", "data:", "about:")):
        return text
    return Path(text).resolve().as_uri()


class _Browser:
    """One Chromium process with a throw-away profile, spoken to over its DevTools pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.binary, self.profile = binary, profile
        self.events: list[dict] = []
        self._buffer = b""
        self._next_id = 0

    def __enter__(self) -> _Browser:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def onto_fds_3_and_4() -> None:  # in the child, before exec: only syscalls
            # Via fds >= 10 first, so neither dup2 can overwrite the other's source.
            read_end = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)
            os.close(read_end)
            os.close(write_end)

        args = [
            self.binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
            "about:blank",
        ]
        self._stderr = open(self.profile / "chromium-stderr.log", "wb")  # noqa: SIM115
        try:
            # close_fds=False: fds 3 and 4 must survive; Python's own fds are close-on-exec.
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
                close_fds=False,
                preexec_fn=onto_fds_3_and_4,
            )
        except BaseException:
            for fd in (self._to_browser, self._from_browser):
                os.close(fd)
            self._stderr.close()
            raise
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(Exception):  # already gone, or hung: killed below
            self.send("Browser.close", timeout_s=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._stderr.close()

    def visit(
        self,
        target: str | Path,
        screenshot: Path,
        width: int = 1280,
        height: int = 2000,
        wait_ms: int = 500,
        wait_for: str | None = None,
        timeout_s: float = 30.0,
    ) -> Page:
        url = _as_url(target)
        deadline = time.monotonic() + timeout_s
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        page = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = page["sessionId"]
        for method in ("Network.enable", "Page.enable", "Runtime.enable", "Log.enable"):
            self.send(method, session=session)
        # Workers' requests are seen too: attach to each as it starts, enable, then let it run.
        self.send(
            "Target.setAutoAttach",
            {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
            session=session,
        )
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
        self.events.clear()
        navigated = self.send("Page.navigate", {"url": url}, session=session)
        if navigated.get("errorText"):
            raise RuntimeError(f"Chromium could not open {url}: {navigated['errorText']}")
        self._pump_until(lambda: self._seen("Page.loadEventFired", session), deadline)
        if wait_for is not None:
            while time.monotonic() < deadline and not self._evaluate(session, wait_for):
                self._pump(0.25)
        self._pump(wait_ms / 1000)
        shot = self.send("Page.captureScreenshot", {"format": "png"}, session=session)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return Page(
            url=self._evaluate(session, "location.href"),
            dom=self._evaluate(session, "document.documentElement.outerHTML"),
            screenshot=screenshot,
            requests=self._requests(url),
            console_errors=self._console_errors(),
        )

    # -- what the page did ------------------------------------------------------------------

    def _requests(self, page_url: str) -> list[str]:
        page = {page_url, page_url.split("#", 1)[0]}
        urls = [
            event["params"]["request"]["url"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]
        return list(
            dict.fromkeys(u for u in urls if u not in page and not u.startswith(NOT_NETWORK))
        )

    def _console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(
                    " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
                )
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description", details["text"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(f"{params['entry']['text']} {params['entry'].get('url', '')}".strip())
        return errors

    def _evaluate(self, session: str, expression: str) -> object:
        params = {"expression": expression, "returnByValue": True}
        reply = self.send("Runtime.evaluate", params, session=session)
        return reply.get("result", {}).get("value")

    def _seen(self, method: str, session: str) -> bool:
        return any(e.get("method") == method and e.get("sessionId") == session for e in self.events)

    # -- the DevTools pipe: JSON messages, each ended by a NUL byte ---------------------------

    def send(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout_s: float = 30,
    ) -> dict:
        """The result of a command, once it comes; events meanwhile go to self.events."""
        sent = self._post(method, session, params)
        deadline = time.monotonic() + timeout_s
        while True:
            for reply in self._read(max(0.0, deadline - time.monotonic())):
                if reply.get("id") == sent:
                    if "error" in reply:
                        raise RuntimeError(f"DevTools {method} failed: {reply['error']}")
                    return reply.get("result", {})
            if time.monotonic() >= deadline:
                raise TimeoutError(f"DevTools {method}: no answer in {timeout_s}s")

    def _pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._read(left)

    def _pump_until(self, done: Callable[[], bool], deadline: float) -> None:
        while not done() and time.monotonic() < deadline:
            self._read(min(0.25, max(0.0, deadline - time.monotonic())))

    def _read(self, timeout_s: float) -> list[dict]:
        """Messages that arrive within `timeout_s` (events are also kept in self.events)."""
        ready, _, _ = select.select([self._from_browser], [], [], timeout_s)
        if not ready:
            return []
        chunk = os.read(self._from_browser, 1 << 20)
        if not chunk:
            self._stderr.flush()
            log = (self.profile / "chromium-stderr.log").read_text(errors="replace")
            raise RuntimeError(f"Chromium exited: {log.strip()[-2000:]}")
        *complete, self._buffer = (self._buffer + chunk).split(b"\0")
        messages = [json.loads(m) for m in complete if m]
        for message in messages:
            if "method" in message:
                self.events.append(message)
                self._on_event(message)
        return messages

    def _on_event(self, event: dict) -> None:
        params = event["params"]
        if event["method"] == "Target.attachedToTarget" and params.get("waitingForDebugger"):
            child = params["sessionId"]  # a worker, paused until we say
            for method in ("Network.enable", "Runtime.runIfWaitingForDebugger"):
                self._post(method, child)

    def _post(self, method: str, session: str | None, params: dict | None = None) -> int:
        """Send a command without waiting for its answer; its id."""
        self._next_id += 1
        message: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]
        return self._next_id
