"""Proves the e2e set-up: a page served on 127.0.0.1, opened, clicked and checked in Chromium."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.e2e

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>labmate e2e smoke</title></head>
<body>
  <h1 id="status">waiting</h1>
  <button id="go" onclick="document.getElementById('status').textContent = 'clicked'">Go</button>
</body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture
def served_page():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_click_changes_text(page, served_page, artifacts_dir):
    page.goto(served_page)
    assert page.title() == "labmate e2e smoke"
    assert page.text_content("#status") == "waiting"

    page.click("#go")

    page.wait_for_function("document.getElementById('status').textContent === 'clicked'")
    assert page.text_content("#status") == "clicked"
    shot = artifacts_dir / "browser_smoke.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 0
