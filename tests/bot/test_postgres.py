"""The bot database on PostgreSQL (`[storage] database = "postgresql://..."`): a real server from
Debian's postgresql (tests/pg.py; skipped where it is not installed), the real BotState, the real
APScheduler job store and claims. BotState's checks run on both backends, SQLite and PostgreSQL;
the scheduler's tests of test_scheduler.py run again with the database on PostgreSQL."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from pathlib import Path

import pytest

from bot import db
from bot.config import load_settings
from bot.devslack import FakeSlack
from bot.services import Services
from bot.state import BotState, Subscription, TrackedJob
from core.errors import ConfigError
from tests.bot import test_scheduler as scheduler_tests
from tests.pg import PASSWORD


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Path | str:
    """The bot database on each backend: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "bot.sqlite"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def state(database):
    opened = BotState(database)
    yield opened
    opened.close()


@pytest.fixture
def fake():
    with FakeSlack() as running:
        yield running


# -- BotState on both backends ---------------------------------------------------------------------

def test_events_are_handled_once_across_processes(database, state):
    assert state.first_time("Ev1") and not state.first_time("Ev1") and state.first_time("Ev2")
    other = BotState(database)  # a second `labmate serve` on the same database
    try:
        assert not other.first_time("Ev1") and other.first_time("Ev3") and not state.first_time("Ev3")
    finally:
        other.close()


def test_outbox_queues_redelivers_and_forgets(state):
    first = state.queue("chat.postMessage", {"channel": "C1", "text": "50% done"}, "timeout")
    second = state.queue("chat.update", {"ts": "1.2"}, "rate limited")
    assert second > first >= 1
    assert state.pending() == [(first, "chat.postMessage", {"channel": "C1", "text": "50% done"}),
                               (second, "chat.update", {"ts": "1.2"})]
    assert state.pending(limit=1) == [(first, "chat.postMessage", {"channel": "C1", "text": "50% done"})]
    state.failed_again(first, "still down")
    state.delivered(first)
    assert state.pending() == [(second, "chat.update", {"ts": "1.2"})]
    state.delivered(second)
    assert state.pending() == []
    assert state.queue("chat.postMessage", {}, "x") > second  # ids are never reused


def test_training_reports_are_tracked_plotted_and_sent_once(state):
    assert state.tracked_job(7) is None and state.tracked_jobs() == []
    state.track_job(7, "C1", "100.1", "queued")
    state.track_job(3, "C2", "100.2")
    assert state.tracked_jobs() == [TrackedJob(3, "C2", "100.2", "", 0), TrackedJob(7, "C1", "100.1", "queued", 0)]
    state.job_shown(7, "running:step 10")
    assert state.claim_plot(7, 5, 5) and not state.claim_plot(7, 9, 5) and state.claim_plot(7, 10, 5)
    assert state.tracked_job(7) == TrackedJob(7, "C1", "100.1", "running:step 10", 10)
    state.job_reported(7)  # done: no longer tracked, what it shows is kept
    assert state.tracked_jobs() == [TrackedJob(3, "C2", "100.2", "", 0)]
    assert state.tracked_job(7).shown == "running:step 10"
    state.job_reported(7, done=False)  # runs again: tracked, shown forgotten
    assert state.tracked_job(7) == TrackedJob(7, "C1", "100.1", "", 10)
    assert [job.job_id for job in state.tracked_jobs()] == [3, 7]
    state.track_job(7, "C9", "200.5", "new")  # a new message replaces the old one entirely
    assert state.tracked_job(7) == TrackedJob(7, "C9", "200.5", "new", 0)
    assert state.first_send(7, "done") and not state.first_send(7, "done") and state.first_send(3, "done")


def test_report_runs_are_claimed_once(state):
    assert state.claim_run("weekly", "lab", "2025-03-03T08:00:00+00:00", "host:1")
    assert not state.claim_run("weekly", "lab", "2025-03-03T08:00:00+00:00", "host:2")
    assert state.claim_run("weekly", "lab", "2025-02-24T08:00:00+00:00", "host:2")
    assert state.claim_run("digest", "lab", "2025-03-03T08:00:00+00:00", "host:2")
    assert state.run_claims("weekly", "lab") == [("2025-02-24T08:00:00+00:00", "host:2"),
                                                 ("2025-03-03T08:00:00+00:00", "host:1")]
    assert state.run_claims("weekly", "other") == []


def test_concurrent_claims_from_two_processes_and_many_threads_give_one_winner(database, state):
    other = BotState(database)
    try:
        results: list[bool] = []
        lock = threading.Lock()

        def claim(target: BotState, n: int) -> None:
            for i in range(20):
                won = target.claim_run("test", "race", f"run-{i}", f"owner-{n}")
                with lock:
                    results.append(won)

        threads = [threading.Thread(target=claim, args=(s, n)) for n, s in enumerate([state, other] * 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results.count(True) == 20 and len(results) == 120
        assert len(other.run_claims("test", "race")) == 20
    finally:
        other.close()


def test_drafts_log_and_subscriptions(state):
    precise = 1_741_000_000.123456  # a time stamp keeps its microseconds (DOUBLE PRECISION, not REAL)
    state.record_draft("C1", "U1", "Related work: light", at=precise)
    state.record_draft("C2", "", "", at=precise + 10)
    state.record_draft("C1", "U2", "Now")
    assert state.drafts_since(precise, precise + 10) == [("C1", "U1", "Related work: light", precise)]
    assert [d[2] for d in state.drafts_since(precise)] == ["Related work: light", "", "Now"]

    one = state.add_subscription("C1", "photosynthesis", "daily", "U1", watermark=precise)
    two = state.add_subscription("C2", "glaciers", "weekly", None, watermark=0.0)
    assert isinstance(one, Subscription) and two.id > one.id and one.user == "U1" and two.user is None
    assert state.subscription(one.id) == one and state.subscription(999) is None
    assert state.subscriptions() == [one, two] and state.subscriptions("C2") == [two]
    state.advance_watermark(one.id, precise + 5)
    state.advance_watermark(one.id, precise)  # never moves back
    assert state.subscription(one.id).watermark == precise + 5
    assert state.remove_subscription(one.id) and not state.remove_subscription(one.id)
    assert state.subscriptions() == [two]


def test_transactions_commit_together_or_not_at_all(database):
    conn = db.connect(database)
    try:
        conn.create_schema("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY AUTOINCREMENT, v REAL NOT NULL);")
        with conn.transaction():
            conn.insert("INSERT INTO t(v) VALUES (?)", (1.5,))
            conn.insert("INSERT INTO t(v) VALUES (?)", (2.5,))
        with pytest.raises(RuntimeError), conn.transaction():
            conn.insert("INSERT INTO t(v) VALUES (?)", (3.5,))
            raise RuntimeError("rolled back")
        assert conn.fetchall("SELECT v FROM t WHERE v > ? ORDER BY id", (0,)) == [(1.5,), (2.5,)]
        assert conn.fetchone("SELECT COUNT(*) FROM t WHERE 'a%' LIKE 'a%'") == (2,)  # a literal %
        assert conn.dialect.name == ("postgresql" if db.is_postgres(database) else "sqlite")
    finally:
        conn.close()


# -- the scheduler on PostgreSQL -------------------------------------------------------------------

SCHEDULER_TESTS = [
    scheduler_tests.test_a_due_report_is_posted_and_its_schedule_survives_a_restart,
    scheduler_tests.test_adding_an_unchanged_schedule_keeps_its_due_run_and_a_changed_one_replaces_it,
    scheduler_tests.test_two_bots_on_one_database_post_each_report_exactly_once,
    scheduler_tests.test_a_run_missed_by_more_than_the_grace_is_skipped_and_logged,
    scheduler_tests.test_the_weekly_job_follows_the_config_on_start,
]


@pytest.mark.parametrize("scheduler_test", SCHEDULER_TESTS, ids=lambda t: t.__name__.removeprefix("test_")[:40])
def test_scheduler_on_postgres(scheduler_test, postgres_url, tmp_path, fake, caplog, monkeypatch):
    """test_scheduler.py's test, with `[storage] database` a PostgreSQL URL: the persistent job
    store (postgresql+psycopg) and the claims live there."""
    on_sqlite = scheduler_tests.make_settings

    def on_postgres(tmp_path, **reports):
        settings = on_sqlite(tmp_path, **reports)
        settings.storage.database = postgres_url
        return settings

    monkeypatch.setattr(scheduler_tests, "make_settings", on_postgres)
    given = {"tmp_path": tmp_path, "fake": fake, "caplog": caplog}
    scheduler_test(**{name: given[name] for name in inspect.signature(scheduler_test).parameters})
    # The jobs and claims are in PostgreSQL, and no SQLite file was made.
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert {"apscheduler_jobs", "report_runs", "events", "outbox"} <= tables
    assert not list(tmp_path.glob("*.sqlite"))


def test_stored_jobs_are_in_postgres(postgres_url, tmp_path, fake):
    settings = scheduler_tests.make_settings(tmp_path)
    settings.storage.database = postgres_url
    with scheduler_tests.services_on(fake, settings) as services:
        services.scheduler.add("test", "pg", "0 9 * * MON")
        assert services.scheduler.aps._lookup_jobstore("default").engine.url.drivername == "postgresql+psycopg"
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM apscheduler_jobs")] == ["test:pg"]


# -- configuration and errors ----------------------------------------------------------------------

def test_the_setting_takes_a_path_a_sqlite_url_or_a_postgres_url(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[storage]\ndatabase = "state/bot.sqlite"\n')
    assert load_settings(config, {}).storage.database == tmp_path / "state" / "bot.sqlite"  # as before
    config.write_text('[storage]\ndatabase = "sqlite:///state/bot.sqlite"\n')
    assert load_settings(config, {}).storage.database == tmp_path / "state" / "bot.sqlite"
    url = "postgresql://lab:secret@db.example.org:5432/labmate"
    config.write_text(f'[storage]\ndatabase = "{url}"\n')
    assert load_settings(config, {}).storage.database == url
    env = {"LABMATE_STORAGE__DATABASE": "postgres://lab:secret@db:5432/x"}
    assert load_settings(config, env).storage.database == "postgresql://lab:secret@db:5432/x"
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, {"LABMATE_STORAGE__DATABASE": "2024.sqlite"}).storage.database == \
        tmp_path / "2024.sqlite"  # a relative path from the environment: against the working directory
    assert db.sqlalchemy_url(url) == "postgresql+psycopg://lab:secret@db.example.org:5432/labmate"
    assert db.sqlalchemy_url(tmp_path / "b.sqlite") == f"sqlite:///{tmp_path / 'b.sqlite'}"
    with pytest.raises(ConfigError) as err:
        load_settings(None, {"LABMATE_STORAGE__DATABASE": "mysql://lab:secret@db/x"})
    assert "storage.database (set by LABMATE_STORAGE__DATABASE)" in str(err.value)
    assert "unsupported database URL" in str(err.value) and "secret" not in str(err.value)


def test_an_unreachable_server_or_a_wrong_password_is_a_config_error_without_the_password(
        postgres_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = postgres_server.url_of("labmate", password="Wr0ng-Secret")
    with pytest.raises(ConfigError) as err:
        BotState(wrong)
    message = str(err.value)
    assert "password authentication failed" in message and "LABMATE_STORAGE__DATABASE" in message
    assert "[storage] database" in message and "Wr0ng-Secret" not in message and "labmate:***@" in message

    closed = f"postgresql://labmate:{PASSWORD}@127.0.0.1:{_closed_port()}/labmate"
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        settings = scheduler_tests.make_settings(tmp_path)
        settings.storage.database = closed
        Services(settings)  # what `labmate serve` does first
    assert time.monotonic() - started < 15
    assert "Cannot open the bot database" in str(err.value) and PASSWORD not in str(err.value)
    assert "check the host and port" in str(err.value)

    with pytest.raises(ConfigError) as err:
        BotState(postgres_server.url_of("no_such_db"))
    assert "no_such_db" in str(err.value) and PASSWORD not in str(err.value)
    assert "Wr0ng-Secret" not in caplog.text and PASSWORD not in caplog.text


def test_mask_hides_passwords():
    assert db.mask("postgresql://u:p%40ss@h:5432/d?sslmode=require") == "postgresql://u:***@h:5432/d?sslmode=require"
    assert db.mask("postgresql://h/d?password=xyz&user=u") == "postgresql://h/d?password=***&user=u"
    assert db.mask("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert db.mask("postgresql://u@h/d") == "postgresql://u@h/d"
    assert db.mask(Path("index/labmate.sqlite")) == "index/labmate.sqlite"


def _closed_port() -> int:
    from tests.pg import free_port

    return free_port()  # free a moment ago: nothing listens there
