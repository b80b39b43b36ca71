"""The local workspace's page API over real HTTP: the real Bolt app in HTTP mode, the real
library and embedder, FakeSlack with its page; what a person does on the page reaches the app
as signed Slack requests, and the app's answers come back through the Web API to the page."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid

import pytest

from bot.app import create_app
from bot.config import Settings
from bot.devslack.ui import PageSettings
from bot.local import channel_ids, index_demo, manifest_commands, start_workspace
from bot.serve import start_http
from bot.services import Services

PAPERS = [
    {"id": "photo", "title": "Photosynthesis in cyanobacteria under high light", "year": 2019,
     "authors": ["Ana Ortiz"], "abstract": "Cyanobacteria repair photosystem II when light is intense."},
    {"id": "ice", "title": "Glacier melt and sea level rise", "year": 2015, "authors": ["Dan Berg"],
     "abstract": "Greenland glaciers lose ice mass faster as ocean temperatures increase."},
]
GENERAL = "C0GENERAL"


@pytest.fixture
def local(tmp_path, library_of):
    """The bot against a local workspace, as `labmate serve` without tokens starts it."""
    library = library_of(PAPERS)
    settings = Settings.model_validate({
        "index": {"dir": str(library.folder)}, "storage": {"database": str(tmp_path / "bot.sqlite")},
        "slack": {"api_retries": 1}})
    fake, env = start_workspace(0, {})
    services = Services(settings, library=library)
    app = create_app(settings, services, env)
    server = start_http(app, "127.0.0.1", 0)
    page = PageSettings(channels=channel_ids(["general", "papers"]), notice="hello *lab*",
                        commands=manifest_commands())
    ui = fake.open_page(f"http://127.0.0.1:{server.server_port}", env["SLACK_SIGNING_SECRET"], page)
    yield fake, ui, server
    server.shutdown()
    services.close()
    fake.stop()


def get(fake, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(fake.base_url + path, timeout=40) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def post(fake, path: str, body: dict) -> dict:
    request = urllib.request.Request(fake.base_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as reply:
        return json.loads(reply.read())


def state(fake, since: int = -1, wait: float = 0) -> dict:
    return json.loads(get(fake, f"/ui/state?since={since}&wait={wait}")[2])


def wait_for_message(fake, predicate, timeout: float = 30) -> dict:
    """Long-polls /ui/state like the page does until a message matches."""
    deadline, version = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        current = state(fake, version, wait=min(5, max(0.1, deadline - time.monotonic())))
        version = current["version"]
        found = next((m for m in current["messages"] if predicate(m)), None)
        if found:
            return found
    raise AssertionError(f"no such message; page shows {[m['text'][:60] for m in current['messages']]}")


def text_of(message: dict) -> str:
    return message["text"] + json.dumps(message["blocks"] or [])


def test_page_and_state_are_served_on_loopback(local):
    fake, _, _ = local
    assert fake.base_url.startswith("http://127.0.0.1:")
    status, ctype, body = get(fake, "/")
    assert status == 200 and ctype.startswith("text/html") and b"/ui/static/app.js" in body
    assert get(fake, "/ui/static/app.js")[0] == 200
    assert get(fake, "/ui/static/../server.py")[0] == 404
    first = state(fake)
    assert [c["name"] for c in first["channels"]] == ["general", "papers"]
    assert first["notice"] == "hello *lab*" and first["me"]["id"] == "U0RESEARCH"
    assert {c["command"] for c in first["commands"]} >= {"/papers", "/draft", "/train", "/report"}


def test_long_poll_returns_as_soon_as_something_changes(local):
    fake, ui, _ = local
    version = state(fake)["version"]
    threading.Timer(0.5, lambda: ui.set_notice("changed")).start()
    start = time.monotonic()
    changed = state(fake, version, wait=20)
    assert changed["notice"] == "changed" and changed["version"] > version
    assert time.monotonic() - start < 10


def test_slash_command_and_bibtex_button_from_the_page(local):
    fake, _, _ = local
    assert post(fake, "/ui/send", {"channel": GENERAL, "text": "/papers cyanobacteria light"}) == {"ok": True}
    results = wait_for_message(fake, lambda m: "paper(s) for" in m["text"] and not m["ephemeral"])
    assert "Photosynthesis in cyanobacteria" in text_of(results) and results["is_bot"]
    button = next(e for b in results["blocks"] if b["type"] == "actions" for e in b["elements"]
                  if e["action_id"] == "papers_bibtex")
    click = {"channel": GENERAL, "ts": results["ts"], "action_id": "papers_bibtex", "block_id": "paper:photo",
             "value": button["value"], "text": "BibTeX"}
    assert post(fake, "/ui/click", click) == {"ok": True}
    entry = wait_for_message(fake, lambda m: m["ephemeral"] and "@" in m["text"] and "photo" in m["text"])
    assert "Photosynthesis in cyanobacteria" in entry["text"]


def test_the_page_signs_what_it_sends_and_shows_a_refusal(local):
    fake, ui, _ = local
    ui.sender.signing_secret = "not-the-apps-secret"  # the app verifies every request's signature
    assert post(fake, "/ui/send", {"channel": GENERAL, "text": "/papers glaciers"})["ok"]
    refusal = wait_for_message(fake, lambda m: m["user"] == "USLACKBOT")
    assert refusal["ephemeral"] and "http_401" in refusal["text"]
    assert not any("Glacier melt" in text_of(m) for m in state(fake)["messages"])


def test_mentions_are_answered_in_the_thread(local):
    fake, _, _ = local
    assert post(fake, "/ui/send", {"channel": GENERAL, "text": "@labmate what do we have on glacier melt?"})["ok"]
    mine = wait_for_message(fake, lambda m: m["user"] == "U0RESEARCH")
    assert mine["text"].startswith("<@U0LABMATE>") and mine["user_name"] == "you"
    reply = wait_for_message(fake, lambda m: m["thread_ts"] == mine["ts"] and m["is_bot"])
    assert "Glacier melt" in text_of(reply)


def test_files_dropped_on_the_page_are_indexed(local):
    fake, _, _ = local
    bib = b"@article{weld2018, title={Construction of the literature graph}, year={2018}, author={Weld, Dan}}\n"
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"channel\"\r\n\r\n{GENERAL}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"refs.bib\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + bib + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(fake.base_url + "/ui/upload", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=20) as reply:
        assert json.loads(reply.read()) == {"ok": True}
    shared = wait_for_message(fake, lambda m: m["files"])
    assert shared["files"][0]["name"] == "refs.bib"
    assert get(fake, shared["files"][0]["url"])[2] == bib
    done = wait_for_message(fake, lambda m: "Added 1 paper" in m["text"], timeout=60)
    assert done["thread_ts"] == shared["ts"]


def test_mistakes_and_an_app_that_is_down_get_an_answer(local):
    fake, _, server = local
    assert post(fake, "/ui/send", {"channel": GENERAL, "text": "  "})["error"].startswith("Type a message")
    unknown = post(fake, "/ui/send", {"channel": GENERAL, "text": "/paper x"})
    assert not unknown["ok"] and "/papers" in unknown["error"]
    assert "no channel" in post(fake, "/ui/send", {"channel": "C404", "text": "hi"})["error"]
    server.shutdown()
    server.server_close()
    assert post(fake, "/ui/send", {"channel": GENERAL, "text": "/papers glaciers"})["ok"]
    note = wait_for_message(fake, lambda m: m["user"] == "USLACKBOT")
    assert note["ephemeral"] and "did not answer" in note["text"]


def test_demo_library_is_indexed_only_into_an_empty_index(tmp_path, open_library):
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "papers.jsonl").write_text(json.dumps({"_id": "d1", "title": "Coral bleaching", "text": "Warm seas."}) + "\n")
    (demo / "README.md").write_text("not a paper")
    settings = Settings.model_validate({"index": {"dir": str(tmp_path / "idx")},
                                        "storage": {"database": str(tmp_path / "bot.sqlite")},
                                        "workspace": {"demo_sources": [str(demo)]}})
    services = Services(settings, library=open_library())
    try:
        line = index_demo(settings, services)
        assert "1 demo papers" in line and "`demo`" in line
        assert services.library().store.counts()["papers"] == 1
        (demo / "more.jsonl").write_text(json.dumps({"_id": "d2", "title": "Ice", "text": "Melt."}) + "\n")
        assert index_demo(settings, services) == "The library holds 1 paper."
    finally:
        services.close()


def test_channel_ids_are_stable_slack_ids():
    assert channel_ids(["general", "#lab-papers"]) == [("C0GENERAL", "general"), ("C0LABPAPERS", "lab-papers")]
