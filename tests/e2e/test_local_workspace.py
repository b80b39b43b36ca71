"""What a newcomer sees after `make run`, driven in headless Chromium.

`labmate serve` runs as its own process with no Slack tokens, exactly as `make run` starts it
(fresh index, database and model cache in a temporary folder): it opens the local workspace,
indexes the demo library, and the test uses the page as a person would: `/papers`, the
"BibTeX" button, `/draft` with the real drafting model, `/report weekly` (whose chart is an
uploaded PNG), an @-mention. Screenshots of each step
are saved in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 180  # imports, the embedder, and on CI a busy machine
DEMO_SECONDS = 300  # indexing the ~740 demo papers on 2 cores


@pytest.fixture
def labmate(tmp_path):
    """`labmate serve` without tokens; yields the page's address and the process's output so far."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LABMATE_"))}
    env.update({
        "LABMATE_INDEX__DIR": str(tmp_path / "index"),
        "LABMATE_STORAGE__DATABASE": str(tmp_path / "labmate.sqlite"),
        "LABMATE_TRAINING__DATABASE": str(tmp_path / "training.sqlite"),
        "LABMATE_TRAINING__RUNS_DIR": str(tmp_path / "runs"),
        "LABMATE_DRAFTING__CACHE_DIR": str(tmp_path / "models"),
        # A short draft keeps the test to a minute on 2 cores; the pipeline is the same.
        "LABMATE_DRAFTING__K": "3", "LABMATE_DRAFTING__SENTENCE_TOKENS": "40",
        "PYTHONUNBUFFERED": "1",
    })
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", "0"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "Open http://127.0.0.1:" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not found.wait(0.5) and process.poll() is None and time.monotonic() < deadline:
            pass
        if not found.is_set():
            pytest.fail("labmate serve printed no page address:\n" + "".join(lines[-40:]))
        url = re.search(r"Open (http://127\.0\.0\.1:\d+/)", "".join(lines)).group(1)
        yield url, lines
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(180)  # a start still indexing the demo finishes its batch first
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 0, "labmate serve did not stop cleanly:\n" + "".join(lines[-40:])


def send(page, text: str) -> None:
    composer = page.locator("textarea#composer")
    composer.fill(text)
    composer.press("Enter")


def test_newcomer_searches_gets_bibtex_and_drafts(labmate, page, artifacts_dir):
    url, log = labmate
    page.goto(url)
    notice = page.locator("#notice")
    notice.filter(has_text="The library holds").wait_for(timeout=DEMO_SECONDS * 1000)
    assert "drop PDF" in notice.inner_text()
    page.screenshot(path=str(artifacts_dir / "local-workspace-1-start.png"))

    send(page, "/papers macrophages and inflammation k:3")
    results = page.locator(".message.bot", has_text="paper(s) for").first
    results.wait_for(timeout=60_000)
    assert results.locator("button.block-button[data-action-id=papers_bibtex]").count() >= 3
    results.locator("button.block-button[data-action-id=papers_bibtex]").first.click()
    entry = page.locator(".message.ephemeral", has_text="@").first
    entry.wait_for(timeout=30_000)
    assert re.search(r"@\w+\{", entry.inner_text()) and "Only visible to you" in entry.inner_text()
    page.screenshot(path=str(artifacts_dir / "local-workspace-2-papers.png"))

    send(page, "/draft related-work macrophages in inflammation")
    placeholder = page.locator(".message.bot:not(.reply)", has_text="related work section").last
    placeholder.wait_for(timeout=30_000)
    ts = placeholder.get_attribute("data-ts")
    draft = page.locator(f".message[data-ts='{ts}']:not(.reply)")
    draft.filter(has_text="drafted,").wait_for(timeout=240_000)  # the same message, edited in place
    assert "Drafting" not in draft.inner_text() and "cited" in draft.inner_text()
    full_text = page.locator(".message.reply", has_text="[1]").first
    full_text.wait_for(timeout=30_000)
    page.locator(".message.reply", has_text=".md").first.wait_for(timeout=30_000)

    send(page, "/report weekly")  # its chart is a PNG the bot uploads, shown as an image
    chart = page.locator(".message.reply img").first
    chart.wait_for(timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=chart.element_handle())

    send(page, "@labmate what do we have on attention in transformers?")
    answer = page.locator(".message.reply.bot", has_text="paper(s) for").first
    answer.wait_for(timeout=60_000)
    page.locator("#notice button").first.click()  # dismiss the banner, as a newcomer would
    draft.scroll_into_view_if_needed()
    page.evaluate("el => el.scrollIntoView({block: 'start'})", draft.element_handle())
    page.screenshot(path=str(artifacts_dir / "local-workspace.png"))
    assert not any("Traceback" in line for line in log), "".join(log[-40:])
