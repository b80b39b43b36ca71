"""/draft's Block Kit renderers against saved JSON, and Slack's limits."""

from __future__ import annotations

import re

from bot.blocks import MAX_BLOCKS, MAX_SECTION
from bot.draft_blocks import (chunks, draft_help, failure_blocks, live_blocks, placeholder_blocks, summary_blocks,
                              thread_messages, to_mrkdwn)
from drafting.sections import SECTIONS
from drafting.types import Citation, Draft
from tests.bot.test_blocks import check_snapshot


def sample_draft(paragraphs: int = 2) -> Draft:
    text = "\n\n".join(
        "Cyanobacteria repair **photosystem II** under intense light [1]. Larger language models predict "
        "text better when trained on more tokens [2]." for _ in range(paragraphs))
    citations = [Citation(1, "photo", "Photosynthesis in cyanobacteria under high light", "photo"),
                 Citation(2, "lm", "Scaling <transformer> language models", "lm")]
    references = ("[1] A. Ortiz. Photosynthesis in cyanobacteria under high light. 2019.\n"
                  "[2] C. Diaz. Scaling <transformer> language models. 2021.")
    return Draft("related-work", "light & language", text, citations, references,
                 "@article{photo,\n  title = {Photosynthesis}\n}\n", warnings=["Removed citation [7]: no such source."])


def test_placeholder_live_summary_and_failure_match_snapshots():
    check_snapshot("draft_placeholder", placeholder_blocks("Related work", "light & <life>", "U1"))
    queued = placeholder_blocks("Related work", "light", "U1", papers=3, queued=True)
    check_snapshot("draft_placeholder_queued", queued)
    assert "from the 3 papers listed" in queued[0]["text"]["text"] and "Queued" in queued[0]["text"]["text"]
    live = live_blocks("Related work", "light", "U1", "Cyanobacteria repair **photosystem II** [1].")
    check_snapshot("draft_live", live)
    assert live[-1]["elements"][0]["text"].endswith("writing…")
    summary = summary_blocks(sample_draft(), "Related work", "U1")
    check_snapshot("draft_summary", summary)
    assert "2 sources cited, 1 warning." in summary[0]["text"]["text"]
    check_snapshot("draft_failure", failure_blocks("Related work", "light", "U1", ":warning: The model is down."))


def test_thread_message_has_text_references_and_warnings():
    messages = thread_messages(sample_draft(), "Related work")
    check_snapshot("draft_thread", [blocks for _, blocks in messages])
    assert len(messages) == 1
    fallback, blocks = messages[0]
    text = "\n".join(b["text"]["text"] for b in blocks)
    assert "*photosystem II*" in text and "&lt;transformer&gt;" in text  # mrkdwn, escaped
    assert "*References*" in text and "Removed citation [7]" in text
    assert "[1]" in fallback and "References" in fallback


def test_long_drafts_and_live_text_stay_within_limits():
    messages = thread_messages(sample_draft(paragraphs=400), "Related work")
    assert len(messages) > 1
    for fallback, blocks in messages:
        assert len(blocks) <= MAX_BLOCKS and len(fallback) <= 4000
        assert all(len(b["text"]["text"]) <= MAX_SECTION for b in blocks)
    body = "\n\n".join(b["text"]["text"] for _, blocks in messages for b in blocks if b["type"] == "section")
    assert body.count("photosystem II") == 400  # nothing lost between messages
    live = live_blocks("Related work", "t", "U1", "word " * 5000 + "the end [3].")
    assert len(live[1]["text"]["text"]) <= 2801 and live[1]["text"]["text"].endswith("the end [3].")


def test_help_lists_every_section_and_helpers_behave():
    assert all(f"`{name}`" in draft_help() for name in SECTIONS)
    assert [len(c) for c in chunks("a" * 7000, 3000)] == [3000, 3000, 1000]
    assert to_mrkdwn("## Title\n- **a** and *b* [1]") == "*Title*\n• *a* and _b_ [1]"
    assert re.fullmatch(r"x+", chunks("x" * 10)[0])
