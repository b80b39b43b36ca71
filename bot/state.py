"""The bot's own small database: events already handled, messages waiting to be redelivered, and
the training jobs whose progress messages the bot keeps up to date (with what it already sent).

SQLite (a file, the default) or PostgreSQL (`[storage] database = "postgresql://..."`); the SQL is
written once, in SQLite's spelling, and `bot.db` carries the differences."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import NamedTuple

from bot.db import Db, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS train_reports (
    job_id INTEGER PRIMARY KEY, channel TEXT NOT NULL, ts TEXT NOT NULL, shown TEXT NOT NULL DEFAULT '',
    evals_plotted INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS train_sent (
    job_id INTEGER NOT NULL, mark TEXT NOT NULL, sent_at REAL NOT NULL, PRIMARY KEY (job_id, mark));
CREATE TABLE IF NOT EXISTS subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, query TEXT NOT NULL, frequency TEXT NOT NULL,
    "user" TEXT, created_at REAL NOT NULL, watermark REAL NOT NULL);
CREATE TABLE IF NOT EXISTS report_runs (
    kind TEXT NOT NULL, key TEXT NOT NULL, scheduled_for TEXT NOT NULL, owner TEXT NOT NULL,
    claimed_at REAL NOT NULL, PRIMARY KEY (kind, key, scheduled_for));
CREATE TABLE IF NOT EXISTS drafts_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, "user" TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '', published_at REAL NOT NULL);
"""


class TrackedJob(NamedTuple):
    """A training job whose channel message (`channel`, `ts`) the bot updates; `shown` is the
    fingerprint of what the message shows now."""

    job_id: int
    channel: str
    ts: str
    shown: str
    evals_plotted: int



class Subscription(NamedTuple):
    """A channel's paper digest: papers matching `query` added to the library after `watermark`
    (the `added_at` of the newest paper already digested), posted `frequency` ("daily", "weekly")."""

    id: int
    channel: str
    query: str
    frequency: str
    user: str | None
    created_at: float
    watermark: float


# "user" is quoted: unquoted, PostgreSQL reads it as CURRENT_USER.
_SUBSCRIPTION = 'SELECT id, channel, query, frequency, "user", created_at, watermark FROM subscriptions'

class BotState:
    """Thread-safe access to the bot database (one connection, serialized by a lock).

    `database`: a SQLite file path, or a PostgreSQL URL (ConfigError if it cannot be opened)."""

    def __init__(self, database: Path | str):
        self._conn: Db = connect(database)
        self._conn.create_schema(SCHEMA)
        self._lock = threading.Lock()
        self._seen = 0

    def first_time(self, event_id: str) -> bool:
        """True the first time an event id is seen (across processes sharing the database)."""
        with self._lock:
            cur = self._conn.execute("INSERT INTO events(event_id, received_at) VALUES (?, ?) "
                                     "ON CONFLICT DO NOTHING",
                                     (event_id, time.time()))
            self._seen += 1
            if self._seen % 1000 == 0:  # now and then, forget events older than Slack's retry window
                self._conn.execute("DELETE FROM events WHERE received_at < ?", (time.time() - 86400,))
            return cur.rowcount == 1

    def queue(self, kind: str, payload: dict, error: str) -> int:
        with self._lock:
            return self._conn.insert(
                "INSERT INTO outbox(kind, payload, attempts, last_error, created_at) VALUES (?, ?, 1, ?, ?)",
                (kind, json.dumps(payload), error, time.time()))

    def pending(self, limit: int = 50) -> list[tuple[int, str, dict]]:
        with self._lock:
            rows = self._conn.execute("SELECT id, kind, payload FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def delivered(self, item_id: int) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM outbox WHERE id=?", (item_id,))

    def failed_again(self, item_id: int, error: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE outbox SET attempts=attempts+1, last_error=? WHERE id=?", (error, item_id))

    # -- training reports ----------------------------------------------------------------------

    def track_job(self, job_id: int, channel: str, ts: str, shown: str = "") -> None:
        """Remember the progress message of a job (and what it shows), so reports go on after a restart."""
        with self._lock:
            # A new row (an upsert resetting every column: what SQLite's INSERT OR REPLACE did).
            self._conn.execute("INSERT INTO train_reports(job_id, channel, ts, shown, evals_plotted, done, created_at) "
                               "VALUES (?, ?, ?, ?, 0, 0, ?) ON CONFLICT (job_id) DO UPDATE SET "
                               "channel=excluded.channel, ts=excluded.ts, shown=excluded.shown, evals_plotted=0, "
                               "done=0, created_at=excluded.created_at", (job_id, channel, ts, shown, time.time()))

    def tracked_jobs(self) -> list[TrackedJob]:
        """The tracked jobs whose end has not been reported yet, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT job_id, channel, ts, shown, evals_plotted FROM train_reports "
                                      "WHERE done=0 ORDER BY job_id").fetchall()
        return [TrackedJob(*row) for row in rows]

    def tracked_job(self, job_id: int) -> TrackedJob | None:
        """One tracked job, reported to its end or not; None if the bot never posted it."""
        with self._lock:
            row = self._conn.execute("SELECT job_id, channel, ts, shown, evals_plotted FROM train_reports "
                                     "WHERE job_id=?", (job_id,)).fetchone()
        return TrackedJob(*row) if row else None

    def job_shown(self, job_id: int, fingerprint: str) -> None:
        """What the job's message shows now."""
        with self._lock:
            self._conn.execute("UPDATE train_reports SET shown=? WHERE job_id=?", (fingerprint, job_id))

    def job_reported(self, job_id: int, done: bool = True) -> None:
        """The job's end was reported (done), or it runs again and needs reports (not done)."""
        with self._lock:
            self._conn.execute("UPDATE train_reports SET done=?, shown=CASE WHEN ?=1 THEN shown ELSE '' END "
                               "WHERE job_id=?", (int(done), int(done), job_id))

    def claim_plot(self, job_id: int, evals: int, every: int) -> bool:
        """True once per `every` new eval points: the caller uploads a plot for `evals` points."""
        with self._lock:
            cur = self._conn.execute("UPDATE train_reports SET evals_plotted=? WHERE job_id=? AND "
                                     "evals_plotted<=?", (evals, job_id, evals - every))
            return cur.rowcount == 1

    def first_send(self, job_id: int, mark: str) -> bool:
        """True the first time (across restarts) a job's message `mark` is about to be sent."""
        with self._lock:
            cur = self._conn.execute("INSERT INTO train_sent(job_id, mark, sent_at) VALUES (?, ?, ?) "
                                     "ON CONFLICT DO NOTHING",
                                     (job_id, mark, time.time()))
            return cur.rowcount == 1

    # -- scheduled reports -----------------------------------------------------------------------

    def claim_run(self, kind: str, key: str, scheduled_for: str, owner: str) -> bool:
        """True for the one process (across processes sharing the database) that claims the run
        of report `kind`/`key` scheduled for `scheduled_for`; every other claim of it is False."""
        with self._lock:
            cur = self._conn.execute("INSERT INTO report_runs(kind, key, scheduled_for, owner, claimed_at) "
                                     "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", (kind, key, scheduled_for, owner, time.time()))
            return cur.rowcount == 1

    def run_claims(self, kind: str, key: str) -> list[tuple[str, str]]:
        """(scheduled_for, owner) of the claimed runs of a report, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT scheduled_for, owner FROM report_runs WHERE kind=? AND key=? "
                                      "ORDER BY scheduled_for", (kind, key)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def record_draft(self, channel: str, user: str = "", title: str = "", at: float | None = None) -> None:
        """A draft was published in Slack (the weekly report counts them)."""
        with self._lock:
            self._conn.execute('INSERT INTO drafts_log(channel, "user", title, published_at) VALUES (?, ?, ?, ?)',
                               (channel, user or "", title or "", time.time() if at is None else at))

    def drafts_since(self, since: float, until: float | None = None) -> list[tuple[str, str, str, float]]:
        """(channel, user, title, published_at) of the drafts published in [since, until), oldest first."""
        with self._lock:
            rows = self._conn.execute('SELECT channel, "user", title, published_at FROM drafts_log '
                                      "WHERE published_at>=? AND published_at<? ORDER BY published_at",
                                      (since, float("inf") if until is None else until)).fetchall()
        return [tuple(r) for r in rows]

    # -- paper digest subscriptions -------------------------------------------------------------

    def add_subscription(self, channel: str, query: str, frequency: str, user: str | None,
                         watermark: float) -> Subscription:
        with self._lock:
            now = time.time()
            sub_id = self._conn.insert('INSERT INTO subscriptions(channel, query, frequency, "user", created_at, '
                                       "watermark) VALUES (?, ?, ?, ?, ?, ?)",
                                       (channel, query, frequency, user, now, watermark))
            return Subscription(sub_id, channel, query, frequency, user, now, watermark)

    def subscription(self, sub_id: int) -> Subscription | None:
        with self._lock:
            row = self._conn.execute(_SUBSCRIPTION + " WHERE id=?", (sub_id,)).fetchone()
        return Subscription(*row) if row else None

    def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        """A channel's subscriptions (every channel's with None), oldest first."""
        with self._lock:
            if channel is None:
                rows = self._conn.execute(_SUBSCRIPTION + " ORDER BY id").fetchall()
            else:
                rows = self._conn.execute(_SUBSCRIPTION + " WHERE channel=? ORDER BY id", (channel,)).fetchall()
        return [Subscription(*row) for row in rows]

    def remove_subscription(self, sub_id: int) -> bool:
        with self._lock:
            return self._conn.execute("DELETE FROM subscriptions WHERE id=?", (sub_id,)).rowcount == 1

    def advance_watermark(self, sub_id: int, watermark: float) -> None:
        """Papers added up to `watermark` were digested (never moves back)."""
        with self._lock:
            self._conn.execute("UPDATE subscriptions SET watermark=? WHERE id=? AND watermark<?",
                               (watermark, sub_id, watermark))

    def close(self) -> None:
        self._conn.close()
