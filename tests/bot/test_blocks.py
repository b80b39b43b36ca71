"""Block Kit renderers against saved JSON, and Slack's limits."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bot.blocks import (MAX_BLOCKS, MAX_SECTION, bibtex_blocks, draft_button_block, results_blocks, results_text,
                        split_messages)
from retrieval.search import Hit

SNAPSHOTS = Path(__file__).parent / "snapshots"


def hits(n: int) -> list[Hit]:
    return [Hit(id=f"p{i}", title=f"Paper <{i}> & friends", authors=["Ada Lovelace", "Alan Turing"], year=2020 + i % 3,
                venue="NeurIPS", url=f"https://doi.org/10.1/{i}" if i % 2 else None, snippet=f"Snippet {i}.",
                score=1 - i / 100, page=i if i % 3 == 0 else None) for i in range(n)]


def check_snapshot(name: str, data) -> None:
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    assert data == json.loads(path.read_text())


def test_results_blocks_match_snapshot():
    blocks = results_blocks("“graph networks” · 2019–2023", hits(2), draft_topic="graph networks")
    check_snapshot("results_two_hits", blocks)
    first = blocks[1]["text"]["text"]
    assert "&lt;0&gt; &amp; friends" in first  # mrkdwn escaped
    assert blocks[3]["elements"][0]["action_id"] == "papers_bibtex" and blocks[3]["elements"][1]["value"] == "p0"
    assert "<https://doi.org/10.1/1|" in blocks[4]["text"]["text"]  # linked title
    draft = blocks[-1]["elements"][0]
    assert draft["action_id"] == "draft_from_results"
    assert json.loads(draft["value"]) == {"topic": "graph networks", "papers": ["p0", "p1"]}


def test_draft_button_value_stays_within_slack_limit():
    many = [f"some-rather-long-paper-identifier-{i:04d}" for i in range(200)]
    value = json.loads(draft_button_block("t" * 1000, many)["elements"][0]["value"])
    assert len(json.dumps(value)) <= 2000 and value["papers"] == many[:len(value["papers"])]
    assert len(value["papers"]) > 10 and len(value["topic"]) <= 300
    assert not any(b["type"] == "actions" and b["block_id"] == "draft" for b in results_blocks("x", hits(2)))


def test_empty_results_say_so():
    check_snapshot("results_empty", results_blocks("“nothing”", []))
    assert results_text("“nothing”", []).startswith("No papers match")


def test_long_results_are_split_within_limits():
    blocks = results_blocks("“many”", [h for h in hits(40)])
    messages = split_messages(blocks)
    assert len(messages) >= 3 and sum(len(m) for m in messages) == len(blocks)
    for message in messages:
        assert len(message) <= MAX_BLOCKS
        assert message[-1]["type"] in ("actions", "section")
        # a result's section, context and buttons always travel together
        for i, block in enumerate(message):
            if block["type"] == "context":
                assert message[i - 1]["type"] == "section" and message[i + 1]["type"] == "actions"


def test_sections_are_clipped_to_slack_limit():
    big = hits(1)[0]
    big.snippet = "word " * 2000
    section = results_blocks("x", [big])[1]
    assert len(section["text"]["text"]) <= MAX_SECTION
    entry = "@article{k,\n" + "  note = {" + "x" * 7000 + "}\n}"
    assert all(len(b["text"]["text"]) <= MAX_SECTION for b in bibtex_blocks(entry))
    assert "".join(b["text"]["text"].strip("`") for b in bibtex_blocks(entry)) == entry
