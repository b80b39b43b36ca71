"""The weekly report's Block Kit renderers against saved JSON (times in the report's time zone)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.blocks import MAX_BLOCKS, MAX_SECTION
from bot.report_blocks import empty_blocks, empty_text, weekly_blocks, weekly_text
from bot.weekly import DraftMade, JobDone, PaperAdded, WeeklyReport, chart_png
from tests.bot.test_blocks import check_snapshot

BERLIN = ZoneInfo("Europe/Berlin")
END = datetime(2025, 3, 10, 9, 0, tzinfo=BERLIN)


def sample_report() -> WeeklyReport:
    day = 86400
    t0 = (END - timedelta(days=7)).timestamp()
    papers = [PaperAdded(f"p{i}", f"Paper <{i}> & light", t0 + day * (i % 7) + 3600) for i in range(10)]
    drafts = [DraftMade("Related work: light & <life>", "U1", "C1", t0 + 2 * day + 60)]
    jobs = [JobDone(3, "ner-small", "token-classification", "succeeded", t0 + 4 * day + 7200,
                    {"f1": 0.8199, "precision": 0.81, "loss": 0.049, "step": 20}),
            JobDone(4, "clf", "text-classification", "failed", t0 + 5 * day, {})]
    return WeeklyReport(start=END - timedelta(days=7), end=END, papers=papers, drafts=drafts, jobs=jobs)


def test_weekly_report_matches_snapshot():
    report = sample_report()
    blocks = weekly_blocks(report)
    check_snapshot("report_weekly", blocks)
    text = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    assert "Papers added: 10" in text and "Paper &lt;0&gt; &amp; light" in text and "…and 2 more" in text
    assert "by <@U1> in <#C1>" in text and "Wed 05 Mar 09:01" in text  # Berlin time
    assert "#3 `ner-small`" in text and "best F1 0.8199 (step 20)" in text and ":x: #4" in text
    assert "Mon 03 Mar 09:00 – Mon 10 Mar 09:00 (Europe/Berlin)" in blocks[-1]["elements"][0]["text"]
    assert len(blocks) <= MAX_BLOCKS and all(len(b["text"]["text"]) <= MAX_SECTION for b in blocks[1:-1])
    assert weekly_text(report) == "Weekly report: 10 papers added, 1 draft, 2 training jobs finished."
    assert report.per_day() == {"papers": [2, 2, 2, 1, 1, 1, 1], "drafts": [0, 0, 1, 0, 0, 0, 0],
                                "jobs": [0, 0, 0, 0, 1, 1, 0]}


def test_empty_week_and_problems_match_snapshot():
    report = WeeklyReport(start=END - timedelta(days=7), end=END, problems=["the paper index could not be read"])
    assert report.empty
    check_snapshot("report_empty", empty_blocks(report))
    assert empty_text(report).startswith("Nothing new this week (Mon 03 Mar 09:00 – Mon 10 Mar 09:00")
    assert "Not included: the paper index could not be read." in empty_blocks(report)[-1]["elements"][0]["text"]


def test_chart_is_a_png():
    png = chart_png(sample_report())
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
