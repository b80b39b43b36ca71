"""The real Bolt app over real HTTP, against the fake Slack Web API, with signed requests."""

from __future__ import annotations

import json
import time

import pytest

from bot.app import create_app
from bot.config import Settings
from bot.devslack import FakeSlack, SlackSender
from bot.serve import start_http
from bot.services import Services
from retrieval.ingest import add_paths

SECRET = "test-signing-secret"
PAPERS = [
    {"id": "photo", "title": "Photosynthesis in cyanobacteria under high light", "year": 2019,
     "authors": ["Ana Ortiz"], "abstract": "Cyanobacteria repair photosystem II when light is intense."},
    {"id": "lm", "title": "Scaling transformer language models", "year": 2021, "authors": ["Cara Diaz"],
     "abstract": "Larger transformer language models trained on more tokens predict text better."},
    {"id": "ice", "title": "Glacier melt and sea level rise", "year": 2015, "authors": ["Dan Berg"],
     "abstract": "Greenland glaciers lose ice mass faster as ocean temperatures increase."},
]


@pytest.fixture
def bot(tmp_path, library_of):
    """A running bot (HTTP mode) with a 3-paper library, the fake Slack and a signed sender."""
    library = library_of(PAPERS)
    settings = Settings.model_validate({
        "index": {"dir": str(library.folder)}, "storage": {"database": str(tmp_path / "bot.sqlite")},
        "slack": {"api_retries": 2, "max_file_mb": 1},
        "access": {"papers": {"channels": ["C1", "C2"]}},
    })
    with FakeSlack() as fake:
        services = Services(settings, library=library)
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
        app = create_app(settings, services, env)
        server = start_http(app, "127.0.0.1", 0)
        sender = SlackSender(f"http://127.0.0.1:{server.server_port}", SECRET, fake)
        yield fake, sender, services
        server.shutdown()
        services.close()


def answers(fake, response_url=None):
    return [m for m in fake.messages() if m.source == "response_url"]


def test_papers_command_acks_then_answers_with_blocks(bot):
    fake, sender, _ = bot
    start = time.perf_counter()
    response = sender.command("/papers", "cyanobacteria light year:2018-2020", channel_id="C1")
    assert response.status == 200 and time.perf_counter() - start < 3.0
    message = fake.wait_for(lambda m: m.source == "response_url", timeout=30)
    assert message.response_type == "in_channel"
    assert "Photosynthesis in cyanobacteria" in message.plain_text and "Glacier" not in message.plain_text
    buttons = [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["papers_bibtex", "papers_more_like", "draft_from_results"]
    assert message.text.startswith("1 paper(s) for")  # plain-text fallback


def test_help_bad_input_and_access_control(bot):
    fake, sender, _ = bot
    sender.command("/papers", "help", channel_id="C1")
    help_message = fake.wait_for(lambda m: "Search the lab's papers" in m.plain_text, timeout=10)
    assert help_message.ephemeral
    sender.command("/papers", "x year:2023-2019", channel_id="C1")
    error = fake.wait_for(lambda m: "backwards" in m.plain_text, timeout=10)
    assert error.ephemeral
    sender.command("/papers", "glaciers", channel_id="C9")
    refused = fake.wait_for(lambda m: "not enabled for you" in m.plain_text, timeout=10)
    assert refused.ephemeral and not any("Glacier melt" in m.plain_text for m in fake.messages())


def test_bad_and_stale_signatures_are_refused_without_side_effects(bot):
    fake, sender, _ = bot
    assert sender.command("/papers", "glaciers", channel_id="C1", signature="v0=bad").status == 401
    assert sender.command("/papers", "glaciers", channel_id="C1", timestamp=int(time.time()) - 600).status == 401
    time.sleep(1.0)
    assert answers(fake) == []
    assert sender.url_verification("abc123").json()["challenge"] == "abc123"


def test_mention_answers_in_thread_once_despite_retries(bot):
    fake, sender, _ = bot
    event = {"type": "app_mention", "user": "U1", "channel": "C2", "ts": "1700000000.000100",
             "text": "<@U0LABMATE> what do we have on glacier melt?"}
    assert sender.event(event, event_id="Ev1").status == 200
    assert sender.event(event, event_id="Ev1", retry_num=1, retry_reason="http_timeout").status == 200
    reply = fake.wait_for(lambda m: m.source == "chat.postMessage" and "Glacier" in m.plain_text, timeout=30)
    assert reply.thread_ts == "1700000000.000100" and reply.channel == "C2"
    time.sleep(1.5)
    assert len([m for m in fake.messages() if m.source == "chat.postMessage"]) == 1


def test_buttons_bibtex_and_more_like_this(bot):
    fake, sender, _ = bot
    sender.action("papers_bibtex", "photo", channel_id="C1")
    entry = fake.wait_for(lambda m: "@" in m.plain_text and "photo" in m.plain_text, timeout=10)
    assert entry.ephemeral and "Photosynthesis in cyanobacteria" in entry.plain_text
    sender.action("papers_more_like", "lm", channel_id="C1")
    similar = fake.wait_for(lambda m: "papers like lm" in m.plain_text, timeout=30)
    assert "Scaling transformer" not in similar.plain_text.split("\n", 1)[1]


def test_shared_files_are_ingested_and_confirmed(bot, data_dir):
    fake, sender, services = bot
    bib = fake.add_file("refs.bib", b"@article{weld2018, title={Construction of the literature graph}, year={2018},"
                        b" author={Weld, Dan}}\n@article{broken, title={oops\n", filetype="text")
    pdf = fake.add_file("bad.pdf", b"%PDF-1.4 not really", filetype="pdf")
    big = fake.add_file("huge.jsonl", b"{}\n" * 400_000, filetype="text")
    for i, info in enumerate((bib, pdf, big)):
        sender.event({"type": "message", "subtype": "file_share", "user": "U1", "channel": "C1",
                      "ts": f"1700000001.00000{i}", "files": [info]}, event_id=f"EvF{i}")
    done = fake.wait_for(lambda m: "Added 1 paper" in m.plain_text, timeout=60)
    assert done.thread_ts == "1700000001.000000" and "skipped 1" in done.plain_text
    fake.wait_for(lambda m: "bad.pdf" in m.plain_text and "not a readable PDF" in m.plain_text, timeout=60)
    fake.wait_for(lambda m: "huge.jsonl" in m.plain_text and "limit" in m.plain_text, timeout=30)
    assert services.library().store.resolve_id("weld2018") == "weld2018"
    downloads = fake.calls_to("file_download")
    assert downloads and all(c.token == "xoxb-test" for c in downloads)


def test_rate_limits_are_retried_and_outages_lose_no_answer(bot):
    fake, sender, services = bot
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    event = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1700000002.000100",
             "text": "<@U0LABMATE> transformer language models"}
    sender.event(event, event_id="Ev429")
    fake.wait_for(lambda m: m.source == "chat.postMessage" and "Scaling transformer" in m.plain_text, timeout=30)
    assert len(fake.calls_to("chat.postMessage")) == 2  # one 429, one delivery
    fake.fail_next("chat.postMessage", status=500, times=10)
    sender.event(dict(event, ts="1700000003.000100"), event_id="Ev500")
    deadline = time.monotonic() + 30
    while not services.state.pending() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(services.state.pending()) == 1  # parked, logged, not lost
    while services.messenger.redeliver() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert services.state.pending() == []
    assert fake.wait_for(lambda m: m.thread_ts == "1700000003.000100", timeout=5)


def test_socket_mode_round_trip(tmp_path, open_library):
    """The same app over Socket Mode: the connection URL comes from SLACK_API_URL's server."""
    from bot.devslack import SocketSender
    from bot.serve import socket_handler

    source = tmp_path / "papers.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in PAPERS))
    library = open_library()
    add_paths(library, [source])
    settings = Settings.model_validate({"index": {"dir": str(library.folder)},
                                        "storage": {"database": str(tmp_path / "bot.sqlite")}})
    with FakeSlack() as fake:
        services = Services(settings, library=library)
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test", "SLACK_API_URL": fake.url}
        handler = socket_handler(create_app(settings, services, env), env)
        handler.connect()
        try:
            fake.wait_for_socket(10)
            envelope = SocketSender(fake).command("/papers", "sea level glaciers", channel_id="C1")
            assert fake.wait_for_ack(envelope, timeout=10)
            message = fake.wait_for(lambda m: m.source == "response_url", timeout=30)
            assert "Glacier melt" in message.plain_text
        finally:
            handler.client.auto_reconnect_enabled = False
            fake.close_sockets()
            handler.client.close()
            services.close()
