"""/report weekly and `labmate report run weekly`: the real Bolt app over real HTTP (signed
requests) and the real CLI, against the fake Slack Web API, with a real small library, a real
`LocalService` job store and the bot database."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from bot.app import create_app
from bot.cli import main
from bot.config import Settings
from bot.devslack import FakeSlack, SlackSender
from bot.serve import start_http
from bot.services import Services
from bot.weekly import post_weekly
from tests.bot.test_train_command import RESULT
from training.service import LocalService

SECRET = "test-signing-secret"
PAPERS = [
    {"id": "photo", "title": "Photosynthesis in cyanobacteria under high light", "year": 2019,
     "authors": ["Ana Ortiz"], "abstract": "Cyanobacteria repair photosystem II quickly when light is intense."},
    {"id": "ice", "title": "Glacier melt and sea level rise", "year": 2015, "authors": ["Dan Berg"],
     "abstract": "Greenland glaciers lose ice mass faster as ocean temperatures increase."},
    {"id": "old", "title": "An old paper on algae", "year": 2010, "authors": ["Mo Tan"],
     "abstract": "Green algae convert light to biomass."},
]


def make_settings(tmp_path, index_dir, **reports) -> Settings:
    return Settings.model_validate({
        "storage": {"database": str(tmp_path / "bot.sqlite")}, "slack": {"api_retries": 0},
        "index": {"dir": str(index_dir)}, "access": {"report": {"users": ["U1"]}},
        "training": {"database": str(tmp_path / "training.sqlite"), "runs_dir": str(tmp_path / "runs")},
        "reports": {"timezone": "Europe/Berlin", **reports}})


@pytest.fixture
def library(library_of):
    library = library_of(PAPERS)
    with library.store.transaction():  # added ten days ago: not this week's
        library.store.conn.execute("UPDATE papers SET added_at=? WHERE id='old'", (time.time() - 10 * 86400,))
    return library


def finished_job(service, name: str = "ner-small") -> int:
    """A training job that ran to its end this week, as the worker records it."""
    job = service.store.submit(name=name, task="token-classification", spec={}, spec_text="")
    service.store.claim("test-worker", job.id)
    service.store.finish(job.id, "succeeded", result=RESULT)
    return job.id


@contextmanager
def bot_on(fake, settings, library):
    service = LocalService(settings.training)
    services = Services(settings, library=library, training=service)
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
    server = start_http(create_app(settings, services, env), "127.0.0.1", 0)
    try:
        yield SimpleNamespace(fake=fake, services=services, service=service,
                              sender=SlackSender(f"http://127.0.0.1:{server.server_port}", SECRET, fake))
    finally:
        server.shutdown()
        services.close()
        service.close()


def test_report_weekly_posts_the_weeks_papers_drafts_jobs_and_chart(tmp_path, index_dir, library):
    with FakeSlack() as fake, bot_on(fake, make_settings(tmp_path, index_dir), library) as bot:
        job_id = finished_job(bot.service)
        bot.services.state.record_draft("C1", "U1", "Related work: light")
        bot.services.state.record_draft("C1", "U1", "Ancient draft", at=time.time() - 9 * 86400)
        assert bot.sender.command("/report", "weekly", user_id="U1", channel_id="C1").status == 200
        report = fake.wait_for(lambda m: m.source == "chat.postMessage" and m.text.startswith("Weekly report"),
                               timeout=15)
        assert report.channel == "C1"
        assert report.text == "Weekly report: 2 papers added, 1 draft, 1 training job finished."
        text = report.plain_text
        assert "Photosynthesis in cyanobacteria" in text and "Glacier melt" in text and "old paper" not in text
        assert "Related work: light" in text and "Ancient draft" not in text
        assert f"#{job_id} `ner-small`" in text and "best F1 0.8199 (step 20)" in text
        assert "(Europe/Berlin)" in text
        chart = fake.wait_for(lambda m: m.files and m.thread_ts == report.ts, timeout=15)
        assert chart.files[0]["name"].startswith("weekly-report-") and chart.files[0]["name"].endswith(".png")
        # Someone without the `report` access rule is refused.
        bot.sender.command("/report", "weekly", user_id="U9", channel_id="C1")
        refused = fake.wait_for(lambda m: m.source == "response_url" and "not enabled" in m.plain_text, timeout=10)
        assert refused.ephemeral


def test_a_week_with_nothing_new_gets_a_brief_note_or_nothing(tmp_path, index_dir, library):
    later = datetime.now(timezone.utc) + timedelta(days=30)  # the week to a month from now: nothing in it
    with FakeSlack() as fake, bot_on(fake, make_settings(tmp_path, index_dir), library) as bot:
        assert post_weekly(bot.services, "C2", end=later)
        [note] = fake.messages("C2")
        assert note.text.startswith("Nothing new this week") and not fake.calls_to("files.completeUploadExternal")
    with FakeSlack() as fake, bot_on(fake, make_settings(tmp_path, index_dir, skip_empty=True), library) as bot:
        assert not post_weekly(bot.services, "C2", end=later)
        assert fake.messages("C2") == []


def test_the_scheduled_weekly_report_goes_to_the_reports_channel_once(tmp_path, index_dir, library):
    settings = make_settings(tmp_path, index_dir, channel="CLAB")
    with FakeSlack() as fake, bot_on(fake, settings, library) as one, bot_on(fake, settings, library) as two:
        finished_job(one.service)
        one.services.start_scheduler()
        two.services.start_scheduler()
        due = datetime.now(timezone.utc)  # due now (the week to now holds the papers and the job)
        one.services.scheduler.aps.modify_job("weekly:lab", jobstore="default", next_run_time=due)
        two.services.scheduler.aps.wakeup()
        report = fake.wait_for(lambda m: m.channel == "CLAB" and m.text.startswith("Weekly report"), timeout=15)
        assert "2 papers added" in report.text
        fake.wait_for(lambda m: m.files and m.thread_ts == report.ts, timeout=15)
        time.sleep(0.5)
        assert len([m for m in fake.messages("CLAB") if m.text.startswith("Weekly report")]) == 1
        assert not two.services.scheduler.run_now("weekly", "lab", due)  # already claimed


def test_labmate_report_run_weekly_posts_from_the_command_line(tmp_path, index_dir, library):
    settings = make_settings(tmp_path, index_dir)
    library.close()  # the CLI opens it itself
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndatabase = "{tmp_path / "bot.sqlite"}"\n[index]\ndir = "{index_dir}"\n'
                      f'[training]\ndatabase = "{settings.training.database}"\nruns_dir = "{tmp_path / "runs"}"\n')
    runner = CliRunner()
    with FakeSlack() as fake:
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": fake.url, "LABMATE_CONFIG": ""}
        result = runner.invoke(main, ["--config", str(config), "report", "run", "weekly", "--channel", "C7"], env=env)
        assert result.exit_code == 0, result.output
        assert "Posted the weekly report in C7." in result.output
        report = fake.wait_for(lambda m: m.channel == "C7" and m.text.startswith("Weekly report"), timeout=5)
        assert "2 papers added" in report.text
        assert [m for m in fake.messages("C7") if m.files and m.thread_ts == report.ts]
        # No channel given and none configured; no token.
        result = runner.invoke(main, ["--config", str(config), "report", "run", "weekly"], env=env)
        assert result.exit_code == 1 and "--channel" in result.output and "[reports]" in result.output
        result = runner.invoke(main, ["--config", str(config), "report", "run", "weekly", "--channel", "C7"],
                               env={"SLACK_BOT_TOKEN": "", "SLACK_API_URL": fake.url})
        assert result.exit_code == 1 and "SLACK_BOT_TOKEN" in result.output
