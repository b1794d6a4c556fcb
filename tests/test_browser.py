"""The headless-browser harness itself: it sees what a page draws, what its scripts made of
the DOM, and every request it sends, and nothing that is not a request."""

from __future__ import annotations

import base64
import functools
import io
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser import is_blank, open_page
from PIL import Image


def png_bytes(size: tuple[int, int], colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


class RecordingHandler(SimpleHTTPRequestHandler):
    """Serves a folder and remembers each path asked for."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A local http.server over a folder: (base URL, folder, paths requested)."""
    folder = tmp_path / "served"
    folder.mkdir()
    seen: list[str] = []
    handler = type("Handler", (RecordingHandler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder, seen
    server.shutdown()
    server.server_close()


def test_a_self_contained_page_renders_runs_its_script_and_requests_nothing(tmp_path: Path):
    inline = base64.b64encode(png_bytes((120, 80), "#c0392b")).decode()
    html = tmp_path / "report.html"
    html.write_text(
        "<!doctype html><html><body><h1>Churn report</h1>"
        f'<img alt="chart" src="data:image/png;base64,{inline}">'
        '<p id="late"></p><script>document.getElementById("late").textContent ='
        ' "written by script " + (6 * 7);</script></body></html>'
    )

    page = open_page(html, tmp_path / "report.png")

    assert page.requests == []  # a data: URI is not a request, nor is the page itself
    assert "Churn report" in page.dom
    assert "written by script 42" in page.dom  # the DOM after JavaScript ran
    assert page.url == html.resolve().as_uri()
    assert not is_blank(page.screenshot)
    with Image.open(page.screenshot) as shot:
        assert shot.size == (1280, 2000)
        red = (0xC0, 0x39, 0x2B)
        assert red in {colour for _, colour in shot.convert("RGB").getcolors(1 << 20)}
    assert page.console_errors == []


def test_a_file_page_that_loads_from_http_is_caught_requesting_it(tmp_path: Path, http_folder):
    base, folder, seen = http_folder
    (folder / "x.png").write_bytes(png_bytes((10, 10), "blue"))
    html = tmp_path / "leaky.html"
    html.write_text(f'<html><body><p>chart:</p><img src="{base}/x.png"></body></html>')

    page = open_page(html, tmp_path / "leaky.png")

    assert page.requests == [f"{base}/x.png"]
    assert seen == ["/x.png"]  # the server agrees: the browser really fetched it


def test_an_http_page_lists_its_subrequests_but_not_itself(tmp_path: Path, http_folder):
    base, folder, seen = http_folder
    (folder / "index.html").write_text(
        '<html><body><p>served</p><script src="app.js"></script></body></html>'
    )
    (folder / "app.js").write_text('fetch("/data.json").then(r => r.status);')
    (folder / "data.json").write_text("{}")

    page = open_page(f"{base}/index.html", tmp_path / "served.png", wait_ms=300)

    # Chromium also asks an http page's server for /favicon.ico: real traffic, recorded.
    assert [u for u in page.requests if not u.endswith("/favicon.ico")] == [
        f"{base}/app.js",
        f"{base}/data.json",
    ]
    # The server saw the same, in order; the favicon request may come at any point among them.
    assert [path for path in seen if path != "/favicon.ico"] == [
        "/index.html",
        "/app.js",
        "/data.json",
    ]


def test_a_blank_white_page_is_blank(tmp_path: Path):
    html = tmp_path / "blank.html"
    html.write_text("<!doctype html><html><body style='background:#fff'></body></html>")

    page = open_page(html, tmp_path / "blank.png", width=400, height=300)

    assert is_blank(page.screenshot)
    assert page.requests == []
