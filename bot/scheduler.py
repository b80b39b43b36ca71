"""Scheduled reports that survive restarts and are posted exactly once.

One APScheduler `BackgroundScheduler` per bot process, with two job stores:

- "default": a `SQLAlchemyJobStore` in the bot database (`[storage] database`: SQLite, or
  PostgreSQL through `postgresql+psycopg://`), for the cron schedules of reports (`weekly:lab`,
  `digest:<id>`, ...). They survive restarts; a run missed
  while no bot was up is run once on start (coalesced) if it is at most `[reports]
  grace_seconds` late, else skipped and logged (EVENT_JOB_MISSED).
- "memory": in-memory jobs that need not persist (the interval pass of the training reports).

Stored jobs are pickled, so they call a module-level function with plain arguments,
`fire(kind, key)`; it finds this process's `Scheduler` (the one whose executor runs it, else the
last one started) and its services. Before anything is posted, each run is claimed in the bot
database with the unique key (kind, key, scheduled time): when two `labmate serve` processes
share the database, both may fire the same run, and the one that loses the claim does nothing.
The scheduled time is the run time APScheduler computed from the stored job's trigger, the same
in every process.

Report kinds register a handler: `register_handler("weekly", handler)` where
`handler(services, key, scheduled_for)` posts the report.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import TYPE_CHECKING, Callable

from bot.db import is_postgres, sqlalchemy_url

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger("labmate.scheduler")

Handler = Callable[["Services", str, datetime], None]
CRON_HELP = ("a cron expression has 5 fields separated by spaces: minute hour day-of-month month day-of-week, "
             "e.g. \"0 9 * * MON\" (Mondays at 9:00) or \"30 8 * * *\" (every day at 8:30)")
PERSISTENT = "default"
MEMORY = "memory"

_handlers: dict[str, Handler] = {}
_started: list["Scheduler"] = []  # the schedulers running in this process, newest last
_registry_lock = threading.Lock()
_local = threading.local()  # the Scheduler (and run time) of the job running on this thread


def register_handler(kind: str, handler: Handler) -> None:
    """What runs a report of `kind`: `handler(services, key, scheduled_for)`."""
    _handlers[kind] = handler


def _load_handlers() -> None:
    """Import the report modules; each registers its handler when imported."""
    import bot.digests  # noqa: F401  ("digest")
    import bot.weekly  # noqa: F401  ("weekly")


def parse_cron(cron: str, timezone: str | None = None):
    """The APScheduler trigger of a 5-field cron expression; ValueError with a clear message if invalid."""
    from apscheduler.triggers.cron import CronTrigger

    tz = zone(timezone or "UTC")
    try:
        return CronTrigger.from_crontab(str(cron).strip(), timezone=tz)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cron expression {cron!r} ({exc}); {CRON_HELP}") from None


def zone(name: str):
    """The ZoneInfo of an IANA time zone name; ValueError with a clear message if unknown."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as \"UTC\", "
                         "\"Europe/Berlin\" or \"America/New_York\"") from None


def claim_key(scheduled_for: datetime) -> str:
    """The run's time as stored in its claim: UTC, to the second (the same in every process)."""
    if scheduled_for.tzinfo is None:
        scheduled_for = scheduled_for.replace(tzinfo=dt_timezone.utc)
    return scheduled_for.astimezone(dt_timezone.utc).replace(microsecond=0).isoformat()


def fire(kind: str, key: str) -> None:
    """The function every stored job calls (module-level, plain arguments: the job store pickles it)."""
    scheduler = getattr(_local, "scheduler", None)
    if scheduler is None:
        with _registry_lock:
            scheduler = _started[-1] if _started else None
    if scheduler is None:
        log.error("report %s:%s fired but no scheduler runs in this process", kind, key)
        return
    scheduled_for = getattr(_local, "run_time", None) or scheduler.scheduled_time(kind, key)
    scheduler.run_now(kind, key, scheduled_for)


def _make_executor(owner: "Scheduler", max_workers: int):
    """A thread pool executor that tells `fire` which Scheduler runs it, and the run's scheduled time."""
    from apscheduler.executors.base import run_job
    from apscheduler.executors.pool import ThreadPoolExecutor

    class OwnedExecutor(ThreadPoolExecutor):
        def _do_submit_job(self, job, run_times):
            def callback(f):
                exc = f.exception()
                if exc:
                    self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
                else:
                    self._run_job_success(job.id, f.result())

            def run():
                _local.scheduler, _local.run_time = owner, (run_times[-1] if run_times else None)
                try:
                    return run_job(job, job._jobstore_alias, run_times, self._logger.name)
                finally:
                    _local.scheduler = _local.run_time = None

            self._pool.submit(run).add_done_callback(callback)

    return OwnedExecutor(max_workers)


class Scheduler:
    """This process's scheduler of reports (`services.scheduler`); see the module's doc."""

    def __init__(self, services: "Services", *, max_workers: int = 4):
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self.services = services
        reports = services.settings.reports
        self.grace_seconds = int(reports.grace_seconds)
        self.timezone = reports.timezone
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        database = services.settings.storage.database  # a SQLite path or a PostgreSQL URL
        if not is_postgres(database):
            database.parent.mkdir(parents=True, exist_ok=True)
        self.aps = BackgroundScheduler(
            jobstores={PERSISTENT: SQLAlchemyJobStore(url=sqlalchemy_url(database)), MEMORY: MemoryJobStore()},
            executors={"default": _make_executor(self, max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": self.grace_seconds},
            timezone=zone(self.timezone), daemon=True)
        self.aps.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self.aps.add_listener(self._on_error, EVENT_JOB_ERROR)
        self._lock = threading.RLock()
        self._resumed = False
        self._stopping = threading.Event()
        self.wakeup_seconds = 60.0

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether due jobs run (started and not paused)."""
        return self._resumed and self.aps.running

    def _open(self) -> None:
        """Open the job stores (paused: nothing runs until `start`), so jobs can be added and read."""
        with self._lock:
            if not self.aps.running:
                self.aps.start(paused=True)

    def start(self) -> "Scheduler":
        """Open the job stores, (re)register the configured weekly report and digests, and run due
        jobs from now on: a stored run missed within the grace period runs once, an older one is skipped."""
        from bot import digests

        _load_handlers()
        with self._lock:
            self._open()
            if not self._resumed:
                self.sync_weekly()
                digests.sync(self.services)  # the digests' schedules as [reports] sets them now
                with _registry_lock:
                    _started.append(self)
                self.aps.resume()
                self._resumed = True
                # Look at the shared store now and then: jobs another process added get run here too.
                self._stopping.clear()
                threading.Thread(target=self._wake_up, name="labmate-scheduler-wakeup", daemon=True).start()
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop running jobs (waiting for one under way); the stored schedules stay for the next start."""
        self._stopping.set()
        with self._lock:
            if self.aps.running:
                self.aps.shutdown(wait=wait)
            self._resumed = False
            with _registry_lock:
                if self in _started:
                    _started.remove(self)

    def sync_weekly(self) -> None:
        """The lab's weekly report (`weekly:lab`) as `[reports]` configures it: scheduled on the
        `weekly` cron when a channel is set, removed otherwise."""
        reports = self.services.settings.reports
        if reports.channel:
            self.add("weekly", "lab", reports.weekly, timezone=reports.timezone_of(reports.channel))
        else:
            self.remove("weekly", "lab")

    # -- the API of report kinds ---------------------------------------------------------------

    def add(self, kind: str, key: str, cron: str, *, timezone: str | None = None) -> None:
        """Schedule report `kind`/`key` (job id "kind:key") on `cron` in `timezone` (default
        `[reports] timezone`), persistently. An unchanged schedule is left as stored (so a run
        missed while the bot was down still runs on start); a changed one replaces it.
        Raises ValueError on a bad cron expression or time zone."""
        trigger = parse_cron(cron, timezone or self.timezone)
        job_id = f"{kind}:{key}"
        with self._lock:
            self._open()
            old = self.aps.get_job(job_id, jobstore=PERSISTENT)
            if old is not None and str(old.trigger) == str(trigger) and \
                    str(old.trigger.timezone) == str(trigger.timezone) and old.args == (kind, key):
                return
            self.aps.add_job(fire, trigger, args=(kind, key), id=job_id, name=job_id, jobstore=PERSISTENT,
                             replace_existing=True)
            log.info("report %s scheduled on %r (%s)", job_id, cron, trigger.timezone)

    def remove(self, kind: str, key: str) -> None:
        """Unschedule report `kind`/`key`; nothing happens if it is not scheduled."""
        from apscheduler.jobstores.base import JobLookupError

        with self._lock:
            self._open()
            try:
                self.aps.remove_job(f"{kind}:{key}", jobstore=PERSISTENT)
            except JobLookupError:
                pass

    def job(self, kind: str, key: str):
        """The stored APScheduler job of report `kind`/`key`, or None."""
        with self._lock:
            self._open()
            return self.aps.get_job(f"{kind}:{key}", jobstore=PERSISTENT)

    def run_now(self, kind: str, key: str, scheduled_for: datetime | None = None) -> bool:
        """Claim the run of `kind`/`key` scheduled for `scheduled_for` (default: now, a run of
        its own), then run its handler. False (and nothing done) if another process, or an
        earlier call, had claimed that run."""
        scheduled_for = scheduled_for or datetime.now(dt_timezone.utc)
        _load_handlers()
        handler = _handlers.get(kind)
        if handler is None:
            log.error("no handler for reports of kind %r (job %s:%s)", kind, kind, key)
            return False
        if not self.services.state.claim_run(kind, key, claim_key(scheduled_for), self.owner):
            log.info("report %s:%s of %s was claimed by another process; skipped", kind, key,
                     claim_key(scheduled_for))
            return False
        log.info("running report %s:%s scheduled for %s", kind, key, claim_key(scheduled_for))
        handler(self.services, key, scheduled_for)
        return True

    def scheduled_time(self, kind: str, key: str, now: datetime | None = None) -> datetime:
        """The run of `kind`/`key` due now: its trigger's fire time at or just before `now`, within
        the grace period (the same in every process); `now` itself if there is none."""
        now = now or datetime.now(dt_timezone.utc)
        job = self.job(kind, key)
        if job is None:
            return now
        since = now - timedelta(seconds=self.grace_seconds)
        due, last = job.trigger.get_next_fire_time(None, since), None
        while due is not None and due <= now:
            last = due
            due = job.trigger.get_next_fire_time(due, due + timedelta(seconds=1))
        return last or now

    def _wake_up(self) -> None:
        while not self._stopping.wait(self.wakeup_seconds):
            if self.aps.running:
                self.aps.wakeup()

    # -- events ----------------------------------------------------------------------------------

    def _on_missed(self, event) -> None:
        log.warning("report %s scheduled for %s was missed by more than %ss (the grace period); skipped",
                    event.job_id, event.scheduled_run_time, self.grace_seconds)

    def _on_error(self, event) -> None:
        log.error("report %s scheduled for %s failed: %s", event.job_id, event.scheduled_run_time,
                  event.exception)
