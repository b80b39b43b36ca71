"""The lab's weekly report: the week's numbers (papers added to the index, drafts published in
Slack, training jobs finished with their best metrics), a PNG chart of the week, and posting.

`gather` reads the numbers; `post_weekly` posts the report (Block Kit from `bot.report_blocks`)
and uploads the chart in its thread. The scheduler's "weekly" handler posts it to `[reports]
channel`; `/report weekly` and `labmate report run weekly` post it on demand.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone

from bot import scheduler

log = logging.getLogger("labmate.weekly")
DAYS = 7
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class PaperAdded:
    id: str
    title: str
    added_at: float


@dataclass
class DraftMade:
    title: str
    user: str
    channel: str
    published_at: float


@dataclass
class JobDone:
    id: int
    name: str
    task: str
    state: str
    finished_at: float
    best: dict = field(default_factory=dict)


@dataclass
class WeeklyReport:
    """The week [start, end) in the configured time zone, and what happened in it. `problems`
    says which numbers could not be read (the rest are still reported)."""

    start: datetime
    end: datetime
    papers: list[PaperAdded] = field(default_factory=list)
    drafts: list[DraftMade] = field(default_factory=list)
    jobs: list[JobDone] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.papers or self.drafts or self.jobs)

    @property
    def tz(self):
        return self.end.tzinfo

    def days(self) -> list[datetime]:
        """The starts of the week's days (the last one ends at `end`)."""
        return [self.start + timedelta(days=i) for i in range(DAYS)]

    def per_day(self) -> dict[str, list[int]]:
        """How many papers, drafts and finished jobs each day of the week saw."""
        starts = [d.timestamp() for d in self.days()]

        def count(times: list[float]) -> list[int]:
            out = [0] * DAYS
            for t in times:
                day = max(i for i, s in enumerate(starts) if s <= t) if t >= starts[0] else None
                if day is not None:
                    out[day] += 1
            return out

        return {"papers": count([p.added_at for p in self.papers]),
                "drafts": count([d.published_at for d in self.drafts]),
                "jobs": count([j.finished_at for j in self.jobs])}


def gather(services, end: datetime | None = None, channel: str | None = None) -> WeeklyReport:
    """The week ending at `end` (default now) in the channel's time zone: papers added to the
    index (the retriever's `added_at`), drafts the bot published, training jobs that finished."""
    tz = scheduler.zone(services.settings.reports.timezone_of(channel))
    end = (end or datetime.now(dt_timezone.utc)).astimezone(tz)
    start = end - timedelta(days=DAYS)
    since, until = start.timestamp(), end.timestamp()
    report = WeeklyReport(start=start, end=end)
    try:
        with services.library_lock:
            rows = services.library().store.papers_added(since, until)
        report.papers = [PaperAdded(r["id"], r["title"], r["added_at"]) for r in rows]
    except Exception as exc:  # no index yet, or it cannot be read: the rest is still worth posting
        log.warning("the weekly report could not read the paper index: %s", exc)
        report.problems.append("the paper index could not be read")
    report.drafts = [DraftMade(title, user, channel, at)
                     for channel, user, title, at in services.state.drafts_since(since, until)]
    try:
        jobs = services.training().list(limit=200)
        report.jobs = sorted((JobDone(j.id, j.name, j.task, j.state, j.finished_at, dict((j.result or {}).get("best")
                                                                                       or {}))
                              for j in jobs if j.state in FINISHED and j.finished_at
                              and since <= j.finished_at < until), key=lambda j: (j.finished_at, j.id))
    except Exception as exc:  # the training service is down
        log.warning("the weekly report could not read the training jobs: %s", exc)
        report.problems.append("the training jobs could not be read")
    return report


def chart_png(report: WeeklyReport) -> bytes:
    """A bar chart of the week: papers added, drafts and training jobs finished per day."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    counts = report.per_day()
    labels = [d.strftime("%a %d") for d in report.days()]
    fig = Figure(figsize=(7, 3.2), dpi=100)
    ax = fig.add_subplot()
    width = 0.27
    for i, (name, label) in enumerate((("papers", "papers added"), ("drafts", "drafts"),
                                       ("jobs", "training jobs finished"))):
        ax.bar([x + (i - 1) * width for x in range(DAYS)], counts[name], width, label=label)
    ax.set_xticks(range(DAYS), labels)
    ax.set_ylim(0, max(max(c) for c in counts.values()) * 1.3 + 1)  # room for the legend
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"The week to {report.end.strftime('%d %b %Y')} ({report.tz})")
    ax.legend(loc="upper center", ncols=3, fontsize="small")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def post_weekly(services, channel: str, end: datetime | None = None) -> bool:
    """Post the weekly report in `channel`, with its chart in the thread. A week with nothing new
    gets a brief note, or nothing with `[reports] skip_empty` (returns False then)."""
    from bot.report_blocks import empty_blocks, empty_text, weekly_blocks, weekly_text

    report = gather(services, end, channel)
    if report.empty:
        if services.settings.reports.skip_empty:
            log.info("nothing new this week; the weekly report to %s is skipped", channel)
            return False
        services.messenger.post(channel=channel, text=empty_text(report), blocks=empty_blocks(report))
        return True
    sent = services.messenger.post(channel=channel, text=weekly_text(report), blocks=weekly_blocks(report))
    thread_ts = (sent or {}).get("ts")
    name = f"weekly-report-{report.end.strftime('%Y-%m-%d')}.png"
    services.messenger.upload(channel, thread_ts, [(name, chart_png(report), f"The week in numbers ({name})")])
    return True


def run_weekly(services, key: str, scheduled_for: datetime) -> None:
    """The scheduler's handler of "weekly" reports: the lab's report to `[reports] channel`."""
    channel = services.settings.reports.channel
    if not channel:
        log.warning("weekly report %s fired but [reports] channel is not set; nothing posted", key)
        return
    if services.messenger is None:
        log.error("weekly report %s fired but this process has no Slack client; nothing posted", key)
        return
    post_weekly(services, channel, end=scheduled_for)


scheduler.register_handler("weekly", run_weekly)
