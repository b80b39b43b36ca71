"""Paper digests (`/papers subscribe|subscriptions|unsubscribe`): the real Bolt app over real
HTTP with signed requests, the fake Slack Web API, the real library and embedder, the real bot
database and the real persistent scheduler, whose `run_now` triggers a digest as its cron would."""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from bot.app import create_app
from bot.config import Settings
from bot.devslack import FakeSlack, SlackSender
from bot.digest_blocks import digest_blocks, empty_digest_blocks
from bot.router import PAPERS_HELP, parse_subscription
from bot.serve import start_http
from bot.services import Services
from core.errors import QueryError
from retrieval.ingest import add_paths
from retrieval.search import Hit
from tests.bot.test_blocks import check_snapshot

SECRET = "test-signing-secret"
OLD = [
    {"id": "photo", "title": "Photosynthesis in cyanobacteria under high light", "year": 2019,
     "authors": ["Ana Ortiz"], "abstract": "Cyanobacteria repair photosystem II quickly when light is intense. "
                                           "Repair rates doubled under high light."},
    {"id": "leaf", "title": "Light harvesting in plant photosynthesis", "year": 2022, "authors": ["Li Wei"],
     "abstract": "Plant antenna complexes dissipate excess light energy as heat to protect photosynthesis."},
    {"id": "lm", "title": "Scaling transformer language models", "year": 2021, "authors": ["Cara Diaz"],
     "abstract": "Larger transformer language models trained on more tokens predict text better."},
    {"id": "ice", "title": "Glacier melt and sea level rise", "year": 2015, "authors": ["Dan Berg"],
     "abstract": "Greenland glaciers lose ice mass faster as ocean temperatures increase."},
]
NEW = [
    {"id": "algae", "title": "Photosynthetic efficiency of green algae", "year": 2023, "authors": ["Mo Tan"],
     "abstract": "Green algae convert light into biomass; their photosynthesis saturates at high irradiance."},
    {"id": "chloro", "title": "Chloroplast movement protects leaves from strong light", "year": 2024,
     "authors": ["Ida Holm"],
     "abstract": "Chloroplasts move to the cell walls under strong light, shading each other to limit photodamage."},
    {"id": "gnn", "title": "Graph neural networks for molecule property prediction", "year": 2024,
     "authors": ["Raj Patel"],
     "abstract": "Message passing networks predict solubility and toxicity of small molecules from their graphs."},
    {"id": "trade", "title": "Medieval trade routes of the Hanseatic League", "year": 2022, "authors": ["Olga Brandt"],
     "abstract": "Merchants shipped grain, furs and salted herring between Baltic ports in the fourteenth century."},
]


@contextmanager
def running_bot(tmp_path, library, **reports):
    settings = Settings.model_validate({
        "index": {"dir": str(library.folder)}, "storage": {"database": str(tmp_path / "bot.sqlite")},
        "slack": {"api_retries": 1}, "reports": {"timezone": "Europe/Berlin", **reports},
        "training": {"database": str(tmp_path / "training.sqlite"), "runs_dir": str(tmp_path / "runs")},
    })
    with FakeSlack() as fake:
        services = Services(settings, library=library)
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
        server = start_http(create_app(settings, services, env), "127.0.0.1", 0)
        sender = SlackSender(f"http://127.0.0.1:{server.server_port}", SECRET, fake)
        try:
            yield SimpleNamespace(fake=fake, sender=sender, services=services, library=library, tmp_path=tmp_path)
        finally:
            server.shutdown()
            services.close()


@pytest.fixture
def bot(tmp_path, library_of):
    with running_bot(tmp_path, library_of(OLD)) as running:
        yield running


def ask(bot, text: str, expect: str, channel: str = "C1", user: str = "U1"):
    """`/papers <text>`; its ephemeral answer containing `expect`."""
    before = {m.ts for m in bot.fake.messages()}
    response = bot.sender.command("/papers", text, user_id=user, channel_id=channel)
    assert response.status == 200
    message = bot.fake.wait_for(lambda m: m.source == "response_url" and m.ts not in before
                                and expect in m.plain_text, timeout=20)
    assert message.ephemeral, message.plain_text
    return message


def add_papers(bot, records, name="later.jsonl"):
    path = bot.tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with bot.services.library_lock:
        add_paths(bot.library, [path])


def posted(bot, channel="C1") -> list:
    return [m for m in bot.fake.messages(channel) if m.source == "chat.postMessage"]


def paper_ids(message) -> list[str]:
    return [b["block_id"].split(":", 1)[1] for b in message.blocks
            if b["type"] == "actions" and b.get("block_id", "").startswith("paper:")]


def run(bot, sub_id: int, minutes: int) -> bool:
    """The scheduler's run of digest `sub_id` as if its cron fired `minutes` after a fixed time."""
    when = datetime(2030, 1, 1, 8, 0, tzinfo=timezone.utc) + timedelta(minutes=minutes)
    return bot.services.scheduler.run_now("digest", str(sub_id), scheduled_for=when)


def stored_jobs(bot) -> set[str]:
    with sqlite3.connect(bot.services.settings.storage.database) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM apscheduler_jobs")}


def test_subscribe_digest_new_matching_papers_then_nothing_new_then_unsubscribe(bot):
    reply = ask(bot, "subscribe photosynthesis light daily", "subscription #1")
    assert "daily" in reply.plain_text and "/papers unsubscribe 1" in reply.plain_text
    assert "CET" in reply.plain_text or "CEST" in reply.plain_text  # the first run, in [reports] timezone
    (sub,) = bot.services.state.subscriptions("C1")
    newest = bot.library.store.conn.execute("SELECT MAX(added_at) FROM papers").fetchone()[0]
    assert (sub.id, sub.query, sub.frequency, sub.user, sub.watermark) == (1, "photosynthesis light", "daily", "U1",
                                                                            newest)
    job = bot.services.scheduler.job("digest", "1")
    assert str(job.trigger.timezone) == "Europe/Berlin" and "hour='9'" in str(job.trigger)
    assert "digest:1" in stored_jobs(bot)  # persistent: in the bot database

    add_papers(bot, NEW)
    assert run(bot, 1, 0)
    digest = bot.fake.wait_for(lambda m: "New papers on “photosynthesis light” since" in m.plain_text)
    assert digest.channel == "C1" and not digest.ephemeral and digest.source == "chat.postMessage"
    # Only the new papers on the subject: not the old ones, not the unrelated new ones.
    assert sorted(paper_ids(digest)) == ["algae", "chloro"]
    buttons = {e["action_id"] for b in digest.blocks if b["type"] == "actions" for e in b["elements"]}
    assert {"papers_bibtex", "papers_more_like"} <= buttons
    assert "Daily digest #1" in digest.plain_text
    after = bot.services.state.subscription(1).watermark
    assert after == bot.library.store.conn.execute("SELECT MAX(added_at) FROM papers").fetchone()[0] > newest
    assert not run(bot, 1, 0)  # the same run is claimed once

    # The digest's buttons work like a search result's.
    bot.sender.action("papers_bibtex", "algae", channel_id="C1", message_ts=digest.ts)
    assert bot.fake.wait_for(lambda m: m.source == "response_url" and "@" in m.plain_text
                             and "Photosynthetic efficiency" in m.plain_text, timeout=10).ephemeral

    count = len(posted(bot))
    assert run(bot, 1, 1440)
    empty = posted(bot)[-1]
    assert len(posted(bot)) == count + 1 and paper_ids(empty) == []
    assert empty.plain_text.startswith("No new papers on “photosynthesis light” since")
    assert bot.services.state.subscription(1).watermark == after

    listing = ask(bot, "subscriptions", "Paper digests in this channel")
    assert "#1 “photosynthesis light” · daily · next " in listing.plain_text

    ask(bot, "unsubscribe 1", "Unsubscribed")
    assert bot.services.state.subscriptions() == [] and bot.services.scheduler.job("digest", "1") is None
    assert "digest:1" not in stored_jobs(bot)
    ask(bot, "subscriptions", "This channel has no paper digests")


def test_skip_empty_posts_nothing_and_weekly_is_the_default(tmp_path, library_of):
    with running_bot(tmp_path, library_of(OLD), skip_empty=True) as bot:
        ask(bot, "subscribe glacier melt", "subscription #1")
        sub = bot.services.state.subscription(1)
        assert sub.frequency == "weekly" and sub.query == "glacier melt"
        assert "day_of_week='mon'" in str(bot.services.scheduler.job("digest", "1").trigger)
        add_papers(bot, NEW)  # nothing about glaciers
        assert run(bot, 1, 0)
        assert posted(bot) == []
        # The unrelated papers were looked at: the watermark moved past them.
        assert bot.services.state.subscription(1).watermark > sub.watermark


def test_a_channel_with_its_own_time_zone_gets_its_digests_in_it(tmp_path, library_of):
    with running_bot(tmp_path, library_of(OLD), channel_timezones={"C1": "Asia/Tokyo"}) as bot:
        reply = ask(bot, "subscribe glacier melt daily", "subscription #1")
        assert "JST" in reply.plain_text  # C1's first run, shown in C1's zone
        assert str(bot.services.scheduler.job("digest", "1").trigger.timezone) == "Asia/Tokyo"
    with pytest.raises(Exception, match="unknown time zone 'Mars/Olympus'"):
        Settings.model_validate({"reports": {"channel_timezones": {"C1": "Mars/Olympus"}}})


def test_bad_forms_answer_clearly_and_searches_work_as_before(bot):
    ask(bot, "subscribe", "Add what to follow")
    ask(bot, "subscribe weekly", "Add what to follow")
    ask(bot, "subscribe like:photo", "not `like:`")
    ask(bot, "subscribe light k:500", "k:500 is not a number of results")
    ask(bot, "unsubscribe", "Write `/papers unsubscribe <id>`")
    ask(bot, "unsubscribe two", "Write `/papers unsubscribe <id>`")
    ask(bot, "unsubscribe 7", "no paper digest #7")
    ask(bot, "subscriptions please", "takes nothing after it")
    assert bot.services.state.subscriptions() == []
    ask(bot, "subscribe sea level", "subscription #1", channel="C1")
    ask(bot, "unsubscribe 1", "no paper digest #1", channel="C2")  # another channel's is not yours
    assert bot.services.state.subscription(1) is not None

    bot.sender.command("/papers", "photosynthesis", channel_id="C1")
    results = bot.fake.wait_for(lambda m: m.source == "response_url" and "paper(s) for “photosynthesis”"
                                in m.plain_text, timeout=20)
    assert not results.ephemeral and "photo" in paper_ids(results)
    help_reply = ask(bot, "help", "subscribe <words> [daily|weekly]")
    assert help_reply.text == PAPERS_HELP


def test_a_removed_subscription_unschedules_itself_when_fired(bot):
    ask(bot, "subscribe photosynthesis", "subscription #1")
    bot.services.state.remove_subscription(1)  # e.g. removed by another process between runs
    assert run(bot, 1, 0)
    assert bot.services.scheduler.job("digest", "1") is None and posted(bot) == []


def test_parse_subscription():
    assert parse_subscription("graph networks year:2019-") is None
    assert parse_subscription("subscribers of journals") is None
    request = parse_subscription("subscribe graph networks author:kipf daily")
    assert (request.action, request.query, request.frequency) == ("subscribe", "graph networks author:kipf", "daily")
    assert parse_subscription("SUBSCRIBE protein folding").frequency == "weekly"
    assert parse_subscription("unsubscribe #3").id == 3
    assert parse_subscription("subscriptions").action == "list"
    with pytest.raises(QueryError):
        parse_subscription("subscribe year:2020-")


def test_digest_blocks_match_snapshot():
    since = datetime(2025, 3, 3, 9, 0, tzinfo=timezone(timedelta(hours=1), "CET"))
    hits = [Hit(id="p1", title="Green <algae>", authors=["Mo Tan"], year=2023, venue=None, url="https://doi.org/10.1/a",
                snippet="Algae convert light.", score=0.91)]
    blocks = digest_blocks(4, "photosynthesis", "weekly", since, hits)
    assert blocks[0]["text"]["text"] == "New papers on “photosynthesis” since Mon 3 Mar 2025, 09:00 CET"
    check_snapshot("digest", blocks)
    check_snapshot("digest_empty", empty_digest_blocks(4, "photosynthesis", "weekly", since))
