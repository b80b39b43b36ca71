"""The report scheduler: real APScheduler with its SQLAlchemy job store in the bot's SQLite
database, real claims, real posts to the fake Slack Web API. A test report kind posts one
message per run; each test moves a stored job's next run time into the past (as if the bot had
been down when it was due) instead of waiting for a cron time."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest

from bot import scheduler as scheduling
from bot.config import Settings, load_settings
from bot.devslack import FakeSlack
from bot.services import Services
from bot.slack_client import Messenger, make_client
from core.errors import ConfigError

CHANNEL = "CREP"


def post_test_report(services, key: str, scheduled_for: datetime) -> None:
    services.messenger.post(channel=CHANNEL, text=f"test report {key} for {scheduling.claim_key(scheduled_for)}")


scheduling.register_handler("test", post_test_report)


def make_settings(tmp_path, **reports) -> Settings:
    return Settings.model_validate({
        "storage": {"database": str(tmp_path / "bot.sqlite")}, "slack": {"api_retries": 0},
        "index": {"dir": str(tmp_path / "no-index")},
        "training": {"database": str(tmp_path / "training.sqlite"), "runs_dir": str(tmp_path / "runs")},
        "reports": reports})


@contextmanager
def services_on(fake, settings):
    """A bot process's services talking to `fake` (a second one on the same settings is a second
    `labmate serve` on the same database, or the bot after a restart)."""
    services = Services(settings)
    env = {"SLACK_API_URL": fake.url}
    services.messenger = Messenger(make_client("xoxb-test", env, 0), services.state, 0)
    try:
        yield services
    finally:
        services.close()


def reports_in(fake) -> list:
    return [m for m in fake.messages(CHANNEL) if m.text.startswith("test report")]


def wait_until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


def due_at(services, job_id: str, when: datetime) -> None:
    """Set the stored job's next run time (the scheduler is opened paused if it is not started)."""
    services.scheduler.job(*job_id.split(":"))  # opens the store
    services.scheduler.aps.modify_job(job_id, jobstore=scheduling.PERSISTENT, next_run_time=when)


@pytest.fixture
def fake():
    with FakeSlack() as running:
        yield running


def test_a_due_report_is_posted_and_its_schedule_survives_a_restart(tmp_path, fake):
    settings = make_settings(tmp_path)
    with services_on(fake, settings) as first:
        first.scheduler.add("test", "lab", "0 9 * * MON")
        first.start_scheduler()
        assert first.scheduler.job("test", "lab").next_run_time > datetime.now(timezone.utc)
        due = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=2)
        due_at(first, "test:lab", due)
        message = wait_until(lambda: reports_in(fake))[0]
        assert message.text == f"test report lab for {scheduling.claim_key(due)}"
    # After a restart (new Services and Scheduler on the same database) the schedule is still there
    # and fires again.
    with services_on(fake, settings) as second:
        job = second.scheduler.job("test", "lab")
        assert job is not None and str(job.trigger) == str(scheduling.parse_cron("0 9 * * MON"))
        assert job.next_run_time > datetime.now(timezone.utc)
        due_at(second, "test:lab", due + timedelta(seconds=1))  # missed while the bot was down
        second.start_scheduler()
        wait_until(lambda: len(reports_in(fake)) == 2)
        time.sleep(0.3)
        assert len(reports_in(fake)) == 2  # once, not once per restart
        assert second.scheduler.job("test", "lab").next_run_time > datetime.now(timezone.utc)


def test_adding_an_unchanged_schedule_keeps_its_due_run_and_a_changed_one_replaces_it(tmp_path, fake):
    settings = make_settings(tmp_path)
    with services_on(fake, settings) as services:
        services.scheduler.add("test", "k", "0 9 * * MON")
        past = datetime.now(timezone.utc) - timedelta(minutes=5)
        due_at(services, "test:k", past)
        services.scheduler.add("test", "k", "0 9 * * MON")  # as on every start: left as stored
        assert services.scheduler.job("test", "k").next_run_time == past
        services.scheduler.add("test", "k", "30 8 * * *", timezone="Europe/Berlin")
        job = services.scheduler.job("test", "k")
        assert job.next_run_time > datetime.now(timezone.utc) and str(job.trigger.timezone) == "Europe/Berlin"
        services.scheduler.remove("test", "k")
        services.scheduler.remove("test", "k")  # no error when absent
        assert services.scheduler.job("test", "k") is None


def test_two_bots_on_one_database_post_each_report_exactly_once(tmp_path, fake):
    settings = make_settings(tmp_path)
    with services_on(fake, settings) as one, services_on(fake, settings) as two:
        one.scheduler.add("test", "shared", "0 9 * * MON")
        due = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=3)
        due_at(one, "test:shared", due)
        two.scheduler.job("test", "shared")  # both have the store open, paused, with the job due
        starters = [threading.Thread(target=s.start_scheduler) for s in (one, two)]
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join()
        wait_until(lambda: reports_in(fake))
        time.sleep(0.5)
        assert [m.text for m in reports_in(fake)] == [f"test report shared for {scheduling.claim_key(due)}"]
        assert len(one.state.run_claims("test", "shared")) == 1
        # Both try the same run at the same moment: one claims it, the other does nothing.
        again = due - timedelta(days=7)
        results: list[bool] = []
        runners = [threading.Thread(target=lambda s=s: results.append(s.scheduler.run_now("test", "shared", again)))
                   for s in (one, two)]
        for thread in runners:
            thread.start()
        for thread in runners:
            thread.join()
        assert sorted(results) == [False, True]
        assert len(reports_in(fake)) == 2
        owners = {owner for _, owner in one.state.run_claims("test", "shared")}
        assert owners <= {one.scheduler.owner, two.scheduler.owner}
        # Both processes compute the same scheduled time for a run that is due now.
        now = due + timedelta(seconds=1)
        assert one.scheduler.scheduled_time("test", "shared", now) == \
            two.scheduler.scheduled_time("test", "shared", now)


def test_scheduled_time_is_the_cron_time_at_or_before_now_within_the_grace(tmp_path, fake):
    settings = make_settings(tmp_path, grace_seconds=600, timezone="Europe/Berlin")
    with services_on(fake, settings) as services:
        services.scheduler.add("test", "t", "0 9 * * MON")
        monday_nine = datetime(2025, 3, 3, 8, 0, tzinfo=timezone.utc)  # 09:00 in Berlin
        assert services.scheduler.scheduled_time("test", "t", monday_nine + timedelta(seconds=42)) == monday_nine
        late = monday_nine + timedelta(minutes=20)  # past the grace: no due run, so "now"
        assert services.scheduler.scheduled_time("test", "t", late) == late


def test_a_run_missed_by_more_than_the_grace_is_skipped_and_logged(tmp_path, fake, caplog):
    settings = make_settings(tmp_path, grace_seconds=60)
    caplog.set_level(logging.WARNING, logger="labmate.scheduler")
    with services_on(fake, settings) as services:
        services.scheduler.add("test", "old", "0 9 * * MON")
        due_at(services, "test:old", datetime.now(timezone.utc) - timedelta(hours=2))
        services.scheduler.add("test", "recent", "0 9 * * MON")
        due_at(services, "test:recent", datetime.now(timezone.utc) - timedelta(seconds=30))
        services.start_scheduler()
        wait_until(lambda: any("test:old" in r.getMessage() and "missed" in r.getMessage() for r in caplog.records))
        wait_until(lambda: reports_in(fake))
        time.sleep(0.3)
        assert [m.text.split(" for ")[0] for m in reports_in(fake)] == ["test report recent"]
        assert services.state.run_claims("test", "old") == []
        assert services.scheduler.job("test", "old").next_run_time > datetime.now(timezone.utc)


def test_bad_cron_expressions_and_time_zones_are_refused_clearly(tmp_path, fake):
    with services_on(fake, make_settings(tmp_path)) as services:
        with pytest.raises(ValueError, match="minute hour day-of-month month day-of-week"):
            services.scheduler.add("test", "bad", "every monday")
        with pytest.raises(ValueError, match="invalid cron expression '61 9 \\* \\* MON'"):
            services.scheduler.add("test", "bad", "61 9 * * MON")
        with pytest.raises(ValueError, match="unknown time zone"):
            services.scheduler.add("test", "bad", "0 9 * * MON", timezone="Mars/Olympus")
        assert services.scheduler.job("test", "bad") is None
    with pytest.raises(ConfigError) as err:
        load_settings(None, {"LABMATE_REPORTS__WEEKLY": "0 9 * MON"})
    assert "reports.weekly (set by LABMATE_REPORTS__WEEKLY)" in str(err.value)
    assert "5 fields" in str(err.value) and '"0 9 * * MON"' in str(err.value)
    config = tmp_path / "config.toml"
    config.write_text('[reports]\ndaily = "9 * *"\ntimezone = "Nowhere/City"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(config, {})
    assert "reports.daily" in str(err.value) and "reports.timezone" in str(err.value)
    ok = load_settings(None, {"LABMATE_REPORTS__WEEKLY": "30 8 * * FRI", "LABMATE_REPORTS__CHANNEL": "C9",
                              "LABMATE_REPORTS__SKIP_EMPTY": "true", "LABMATE_REPORTS__GRACE_SECONDS": "120"})
    assert (ok.reports.weekly, ok.reports.channel, ok.reports.skip_empty, ok.reports.grace_seconds) == \
        ("30 8 * * FRI", "C9", True, 120)


def test_the_weekly_job_follows_the_config_on_start(tmp_path, fake):
    with services_on(fake, make_settings(tmp_path, channel=CHANNEL, weekly="0 10 * * TUE")) as services:
        services.start_scheduler()
        job = services.scheduler.job("weekly", "lab")
        assert job is not None and str(job.trigger) == str(scheduling.parse_cron("0 10 * * TUE"))
    with services_on(fake, make_settings(tmp_path, channel=CHANNEL, weekly="0 7 * * FRI",
                                         timezone="America/New_York")) as services:
        services.start_scheduler()  # the cron changed: the stored job is replaced
        job = services.scheduler.job("weekly", "lab")
        assert str(job.trigger) == str(scheduling.parse_cron("0 7 * * FRI", "America/New_York"))
        assert str(job.trigger.timezone) == "America/New_York"
    with services_on(fake, make_settings(tmp_path)) as services:
        services.start_scheduler()  # no channel: no scheduled weekly report
        assert services.scheduler.job("weekly", "lab") is None
