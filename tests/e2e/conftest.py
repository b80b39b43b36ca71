"""End-to-end fixtures: Debian's Chromium (``make browser``) driven by Playwright for Python.

Playwright only drives the system browser (``executable_path``); ``playwright install`` is never
needed and must not be run (it downloads browsers). Fixtures:

- ``browser``: the launched headless Chromium (one per run of tests/e2e); skips, naming what to
  install, where no Chromium can be found.
- ``page``: a fresh context and page (viewport 1280x800) per test, closed afterwards; a test that
  fails leaves a screenshot of it in ``test-artifacts/``.
- ``artifacts_dir``: ``<repo>/test-artifacts/`` (created, git-ignored), where tests save files.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"

# Playwright itself adds --headless, --no-sandbox (as root), a fresh empty --user-data-dir
# (deleted on close) and most of these; they are repeated so that the flags this machine needs
# (root, no network) do not hang on Playwright's defaults. Without the background-networking
# ones Chromium keeps trying to reach Google and is slow to start and stop.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",  # pages are served on 127.0.0.1; never route them through a proxy
]
VIEWPORT = {"width": 1280, "height": 800}
INSTALL_HINT = "install Debian's chromium package (make browser)"


def chromium_path() -> str | None:
    """The system Chromium: $LABMATE_CHROMIUM, else `chromium` on PATH, else /usr/bin/chromium."""
    candidates = [os.environ.get("LABMATE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Keeps each phase's report on the item (rep_setup, rep_call, rep_teardown) so that the
    # `page` fixture can tell, in its teardown, whether the test failed.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# Package scope: launched once for everything under tests/e2e and closed as soon as the run
# leaves it. Playwright's sync API keeps an asyncio loop marked as running in the main thread
# while it is open, which would break asyncio.run() in any later (non-e2e) test.
@pytest.fixture(scope="package")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.skip(f"no Chromium found (chromium, /usr/bin/chromium): {INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is missing: pip install -e '.[dev]'")

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser, request, artifacts_dir):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")
            try:
                page.screenshot(path=str(artifacts_dir / f"FAILED-{name}.png"), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"could not save a failure screenshot: {exc}")
        context.close()
