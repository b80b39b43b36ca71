"""Block Kit of the weekly report: pure functions from a `bot.weekly.WeeklyReport` to `list[dict]`
(tested against saved JSON). Times are shown in the report's time zone."""

from __future__ import annotations

from datetime import datetime

from bot.blocks import clip, escape
from bot.train_blocks import best_summary

TOP_PAPERS = 8
TOP_DRAFTS = 8
TOP_JOBS = 10
STATE_ICONS = {"succeeded": ":white_check_mark:", "failed": ":x:", "cancelled": ":no_entry_sign:"}


def when(ts: float | datetime, tz) -> str:
    """'Mon 03 Mar 14:05' in the report's time zone."""
    moment = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, tz)
    return moment.astimezone(tz).strftime("%a %d %b %H:%M")


def week_span(report) -> str:
    """'Mon 03 Mar 09:00 – Mon 10 Mar 09:00 (Europe/Berlin)'."""
    return f"{when(report.start, report.tz)} – {when(report.end, report.tz)} ({report.tz})"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text)}]}


def _more(shown: int, total: int) -> str:
    return f"\n…and {total - shown} more" if total > shown else ""


def papers_text(report) -> str:
    papers = report.papers
    lines = [f"*:books: Papers added: {len(papers)}*"]
    lines += [f"• {escape(p.title)} `{escape(p.id)}`" for p in papers[:TOP_PAPERS]]
    return "\n".join(lines) + _more(min(len(papers), TOP_PAPERS), len(papers))


def drafts_text(report) -> str:
    drafts = report.drafts
    lines = [f"*:memo: Drafts made: {len(drafts)}*"]
    lines += [f"• {escape(d.title or 'Draft')}" + (f" by <@{d.user}>" if d.user else "") +
              (f" in <#{d.channel}>" if d.channel else "") + f" · {when(d.published_at, report.tz)}"
              for d in drafts[:TOP_DRAFTS]]
    return "\n".join(lines) + _more(min(len(drafts), TOP_DRAFTS), len(drafts))


def jobs_text(report) -> str:
    jobs = report.jobs
    lines = [f"*:chart_with_upwards_trend: Training jobs finished: {len(jobs)}*"]
    for job in jobs[:TOP_JOBS]:
        best = best_summary(job.best) if job.best else ""
        lines.append(f"• {STATE_ICONS.get(job.state, '')} #{job.id} `{escape(job.name)}` ({escape(job.task)}) "
                     f"{job.state} {when(job.finished_at, report.tz)}" + (f" · best {best}" if best else ""))
    return "\n".join(lines) + _more(min(len(jobs), TOP_JOBS), len(jobs))


def weekly_blocks(report) -> list[dict]:
    """The weekly report: a header, papers added (count and top titles), drafts made, training jobs
    finished with their best metrics, and the week's span (the chart follows in the thread)."""
    blocks = [{"type": "header", "text": {"type": "plain_text",
                                          "text": f"Weekly report: week to {report.end.strftime('%a %d %b %Y')}"}},
              _section(papers_text(report)), _section(drafts_text(report)), _section(jobs_text(report)),
              _context(f"{week_span(report)} · the chart of the week is in the thread")]
    if report.problems:
        blocks.append(_context(":warning: Not included: " + "; ".join(escape(p) for p in report.problems) + "."))
    return blocks


def weekly_text(report) -> str:
    """Fallback text (notifications) of the weekly report."""
    return (f"Weekly report: {plural(len(report.papers), 'paper')} added, {plural(len(report.drafts), 'draft')}, "
            f"{plural(len(report.jobs), 'training job')} finished.")


def empty_text(report) -> str:
    """The brief note of a week with nothing new."""
    return f"Nothing new this week ({week_span(report)}): no papers added, no drafts, no training jobs finished."


def empty_blocks(report) -> list[dict]:
    blocks = [_section(f":zzz: *Nothing new this week* ({escape(week_span(report))}): "
                       "no papers added, no drafts, no training jobs finished.")]
    if report.problems:
        blocks.append(_context(":warning: Not included: " + "; ".join(escape(p) for p in report.problems) + "."))
    return blocks


def report_help() -> str:
    return ("*/report weekly* posts the lab's weekly report in this channel now: papers added to the index, "
            "drafts made and training jobs finished in the last 7 days, with a chart.")
