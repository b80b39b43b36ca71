"""Progress reports of training jobs in Slack, from the bot's database of tracked jobs.

Each pass (`TrainReports.tick`) looks at every tracked job not yet reported to its end: its
channel message is edited in place when what it shows changed; when the job ends, the message
shows its final state and its thread gets the final report and the loss/eval plot, the failure
with the log's last lines, or a note that it was cancelled. Each of those is marked in the bot
database *before* it is sent (a message Slack refuses is parked in the outbox and redelivered),
so none is ever sent twice, across restarts and across bot processes sharing the database.

Passes run every `[training] report_seconds` on an interval job of the bot's shared scheduler
(`services.scheduler`, in its in-memory job store: nothing to persist); `poke()` asks for one now (after /train start and cancel, and from the worker when a job changes state).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import datetime, timezone

from bot.blocks import split_messages, text_blocks
from bot.train_blocks import (cancelled_text, failure_blocks, progress_blocks, progress_text, report_blocks,
                              report_text)
from core.errors import NotFoundError

log = logging.getLogger("labmate.train_reports")
LOG_LINES = 20


def plot_title(job) -> str:
    """'Training job #3 (ner-small)' as the plot and the file's title show it (plain text)."""
    return f"Training job #{job.id} ({job.name})"


def fingerprint(text: str, blocks: list[dict]) -> str:
    """What a message shows, in a few bytes (the bot database keeps it to skip needless edits)."""
    return hashlib.sha1(json.dumps([text, blocks], sort_keys=True).encode()).hexdigest()


class TrainReports:
    """Keeps the Slack messages of tracked training jobs up to date (see the module's doc)."""

    def __init__(self, services):
        self.services = services
        self._lock = threading.Lock()  # one pass at a time in this process
        self._poked = threading.Event()
        self._busy = False
        self._job = None

    # -- scheduling ------------------------------------------------------------------------------

    def start(self) -> "TrainReports":
        """Run a pass now, then every `[training] report_seconds`, on the shared scheduler
        (started here if it is not yet)."""
        from bot.scheduler import MEMORY

        scheduler = self.services.scheduler
        if self._job is None:
            scheduler.start()
            self._job = scheduler.aps.add_job(
                self._run, "interval", seconds=self.services.settings.training.report_seconds,
                id="labmate-train-reports", jobstore=MEMORY, max_instances=1, coalesce=True,
                misfire_grace_time=None, next_run_time=datetime.now(timezone.utc), replace_existing=True)
        return self

    def poke(self, job=None) -> None:
        """Ask for a pass soon (`job`, ignored, lets the worker's `on_change` hook call this)."""
        self._poked.set()
        if self._job is not None and not self._busy:
            try:
                self._job.modify(next_run_time=datetime.now(timezone.utc))
            except Exception:  # the scheduler stopped (shutdown): the next start reports anyway
                log.debug("could not schedule a report pass", exc_info=True)

    def stop(self) -> None:
        """Remove the interval job, waiting for a pass under way (the shared scheduler goes on)."""
        if self._job is not None:
            job, self._job = self._job, None
            try:
                job.remove()
            except Exception:  # the scheduler was shut down first
                log.debug("the report job was already gone", exc_info=True)
            with self._lock:  # a pass under way ends before this returns
                pass

    def _run(self) -> None:
        # A poke that arrives during a pass runs another one right after it.
        self._busy = True
        try:
            while True:
                self._poked.clear()
                self.tick()
                if not self._poked.is_set():
                    return
        finally:
            self._busy = False

    # -- one pass -------------------------------------------------------------------------------

    def tick(self) -> int:
        """One pass over the tracked, unfinished jobs; returns how many were looked at. A job that
        cannot be reported now (the service or Slack is down) is retried on the next pass."""
        if self.services.messenger is None:
            return 0
        with self._lock:
            tracked = self.services.state.tracked_jobs()
            for entry in tracked:
                try:
                    self._report(entry)
                except Exception:  # one bad job must not stop the others' reports
                    log.exception("could not report on training job %s", entry.job_id)
            return len(tracked)

    def _report(self, entry) -> None:
        try:
            job = self.services.training().get(entry.job_id)
        except NotFoundError:
            log.warning("training job %s is gone; no more reports on it", entry.job_id)
            self.services.state.job_reported(entry.job_id)
            return
        self._show(entry, job)
        if job.state == "running" and self.services.settings.training.plot_every_evals:
            self._plot_while_running(entry, job)
        if job.finished:
            self._finish(entry, job)
            self.services.state.job_reported(job.id)

    def _show(self, entry, job) -> None:
        """Edit the channel message when what it shows changed (the final state is parked if
        Slack refuses it, so it is never lost; a progress edit is simply tried next time)."""
        text, blocks = progress_text(job), progress_blocks(job)
        shown = fingerprint(text, blocks)
        if shown == entry.shown:
            return
        sent = self.services.messenger.update(park=job.finished, channel=entry.channel, ts=entry.ts,
                                              text=text, blocks=blocks)
        if sent is not None or job.finished:
            self.services.state.job_shown(job.id, shown)

    def _finish(self, entry, job) -> None:
        """The thread messages of the job's end (each ending has its own marks: a resumed job
        that ends again is reported again)."""
        end = f"{job.state}@{job.finished_at}"
        first = self.services.state.first_send
        if job.state == "succeeded":
            if first(job.id, f"report:{end}"):
                self._post_report(entry, job)
            # Drawn before it is marked: a plot that cannot be drawn yet is tried again next pass.
            title = f"{plot_title(job)}: final curves"
            png = self._plot(job, title)
            if png and first(job.id, f"plot:{end}"):
                self._upload(entry, f"train-job-{job.id}-final.png", png, title)
        elif job.state == "failed":
            if first(job.id, f"failure:{end}"):
                self._post_failure(entry, job)
        elif first(job.id, f"cancelled:{end}"):
            self._post(entry, cancelled_text(job), text_blocks(cancelled_text(job)))

    def _post_report(self, entry, job) -> None:
        for blocks in split_messages(report_blocks(job), max_chars=12000):
            self._post(entry, report_text(job), blocks)

    def _post_failure(self, entry, job) -> None:
        try:
            tail = self.services.training().logs(job.id, lines=LOG_LINES)
        except Exception:  # the error itself still goes out
            log.exception("could not read the log of training job %s", job.id)
            tail = "(the log could not be read)"
        self._post(entry, progress_text(job), failure_blocks(job, tail))

    def _plot_while_running(self, entry, job) -> None:
        every = self.services.settings.training.plot_every_evals
        points = self.services.training().metrics(job.id)
        evals = len({p.step for p in points if p.kind == "eval"})
        if evals >= every and self.services.state.claim_plot(job.id, evals, every):
            title = f"{plot_title(job)}: curves after {evals} evaluations"
            self._upload(entry, f"train-job-{job.id}-eval-{evals}.png", self._plot(job, title, points), title)

    def _plot(self, job, title: str, points=None) -> bytes | None:
        """The PNG of the job's curves (None when it recorded no metrics)."""
        from training.plots import plot_png

        points = self.services.training().metrics(job.id) if points is None else points
        return plot_png(points, title) if points else None

    def _upload(self, entry, name: str, png: bytes, title: str) -> None:
        self.services.messenger.upload(entry.channel, entry.ts, [(name, png, title)])

    def _post(self, entry, text: str, blocks: list[dict]) -> None:
        self.services.messenger.post(channel=entry.channel, thread_ts=entry.ts, text=text, blocks=blocks)
