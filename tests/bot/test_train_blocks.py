"""/train's Block Kit renderers against saved JSON, number formats, and Slack's limits."""

from __future__ import annotations

import json

from bot.blocks import MAX_BLOCKS, MAX_SECTION
from bot.train_blocks import (CANCEL_ACTION, cancelled_text, failure_blocks, fmt_duration, fmt_metric, fmt_rate,
                              job_detail_blocks, metrics_table, progress_blocks, progress_text, report_blocks,
                              status_blocks, train_help)
from tests.bot.test_blocks import check_snapshot
from training.store import Job

T0 = 1_700_000_000.0
RUNNING_PROGRESS = {"phase": "training", "step": 120, "total_steps": 300, "epoch": 1.2, "epochs": 3,
                    "loss": 0.04213, "samples_per_s": 43.21, "eta_s": 731, "device": "cuda:0 (NVIDIA H200)",
                    "gpu_memory_mb": 1234.4, "best": {"f1": 0.81234, "step": 100},
                    "eval": {"precision": 0.8, "recall": 0.825, "f1": 0.81234, "loss": 0.0521}}
RESULT = {"final": {"precision": 0.8, "recall": 0.82, "f1": 0.81, "loss": 0.05},
          "best": {"precision": 0.81, "recall": 0.83, "f1": 0.8199, "loss": 0.049, "step": 300},
          "test": {"precision": 0.79, "recall": 0.8, "f1": 0.7949},
          "per_type": {"Disease": {"precision": 0.81, "recall": 0.83, "f1": 0.8199, "support": 1234},
                       "Chemical <x>": {"precision": 0.7, "recall": 0.6, "f1": 0.6462, "support": 56}},
          "history": [], "steps": 300, "epochs": 3, "train_seconds": 725.2, "samples_per_s": 43.2,
          "device": "cuda:0 (NVIDIA H200)", "model_dir": "/runs/job-7/best"}


def job(state: str = "queued", **fields) -> Job:
    values = dict(id=7, name="ner-small", task="token-classification", state=state, spec={}, spec_text="",
                  created_at=T0, updated_at=T0, origin={"channel": "C1", "user": "U1"})
    if state != "queued":
        values["started_at"] = T0 + 5
    if state in ("succeeded", "failed", "cancelled"):
        values["finished_at"] = T0 + 5 + 725
    values.update(fields)
    return Job(**values)


def texts(blocks) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_numbers_are_formatted_for_people():
    assert fmt_metric("f1", 0.81234) == "0.8123" and fmt_metric("loss", 0.04213) == "0.0421"
    assert fmt_metric("support", 1234) == "1,234" and fmt_metric("perplexity", 12.345) == "12.35"
    assert fmt_metric("f1", None) == "–"
    assert fmt_rate(43.21) == "43.2"
    assert [fmt_duration(s) for s in (45, 731, 7500, 200000)] == ["45 s", "12 min", "2 h 05 min", "2 d 7 h"]


def test_progress_message_in_each_state_matches_snapshots():
    queued = job("queued")
    assert progress_text(queued) == "Training job #7 (ner-small) queued by <@U1>…"
    check_snapshot("train_queued", progress_blocks(queued))
    assert progress_blocks(queued)[-1]["elements"][0]["action_id"] == CANCEL_ACTION

    running = job("running", progress=RUNNING_PROGRESS)
    blocks = progress_blocks(running)
    check_snapshot("train_running", blocks)
    shown = texts(blocks)
    for expected in ("epoch 1.20 of 3", "step 120 of 300 (40%)", "0.0421", "F1 0.8123", "43.2 samples/s",
                     "12 min", "cuda:0 (NVIDIA H200)", "1,234 MB GPU memory"):
        assert expected in shown, expected
    assert blocks[-1]["elements"][0]["value"] == "7"
    assert "step 120 of 300" in progress_text(running) and "loss 0.0421" in progress_text(running)

    stopping = job("running", progress=RUNNING_PROGRESS, cancel_requested=True)
    assert "Cancelling" in texts(progress_blocks(stopping)) and progress_blocks(stopping)[-1]["type"] != "actions"

    done = progress_blocks(job("succeeded", result=RESULT, progress=RUNNING_PROGRESS))
    check_snapshot("train_succeeded", done)
    assert "Succeeded* in 12 min: best F1 0.8199 (step 300)" in texts(done) and done[-1]["type"] != "actions"

    failed = job("failed", error="CUDA out of memory <bad> & worse", progress=RUNNING_PROGRESS)
    check_snapshot("train_failed", progress_blocks(failed))
    assert "&lt;bad&gt; &amp; worse" in texts(progress_blocks(failed)) and "/train resume 7" in texts(
        progress_blocks(failed))
    cancelled = job("cancelled", progress=RUNNING_PROGRESS)
    check_snapshot("train_cancelled", progress_blocks(cancelled))
    assert "step 120 of 300" in cancelled_text(cancelled)
    assert "before it started" in cancelled_text(job("cancelled"))


def test_final_report_has_the_metrics_table_with_per_type_rows():
    blocks = report_blocks(job("succeeded", result=RESULT))
    check_snapshot("train_report", blocks)
    tables = [b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("```")]
    overall, per_type = tables
    lines = overall.strip("`").splitlines()
    assert lines[0].split() == ["precision", "recall", "F1", "loss"]
    assert lines[1].split() == ["best", "(step", "300)", "0.8100", "0.8300", "0.8199", "0.0490"]
    assert lines[3].split() == ["test", "0.7900", "0.8000", "0.7949"]
    assert "Disease" in per_type and "1,234" in per_type and "Chemical &lt;x&gt;" in per_type
    assert "/runs/job-7/best" in texts(blocks)


def test_metrics_table_aligns_columns():
    table = metrics_table([("best", {"f1": 0.5, "support": 3}), ("per-type long label", {"f1": 0.25})])
    lines = table.splitlines()
    assert len({len(line) for line in lines[:2]}) == 1  # header and first row line up
    assert lines[2].endswith("0.2500") and metrics_table([]) == ""


def test_failure_message_shows_the_log_tail_in_a_code_block():
    failed = job("failed", error="Training crashed: CUDA out of memory.")
    blocks = failure_blocks(failed, "line 1\nline 2 <tensor>\nRuntimeError: CUDA out of memory")
    check_snapshot("train_failure_thread", blocks)
    assert blocks[2]["text"]["text"].startswith("```") and "&lt;tensor&gt;" in blocks[2]["text"]["text"]
    huge = failure_blocks(failed, "x" * 50_000 + "\nthe end")
    assert all(len(b["text"]["text"]) <= MAX_SECTION for b in huge if "text" in b)
    assert huge[2]["text"]["text"].endswith("the end```")
    assert "(the log is empty)" in texts(failure_blocks(failed, ""))


def test_status_list_detail_and_help():
    active = [job("running", progress=RUNNING_PROGRESS, id=9), job("queued", id=10)]
    recent = [job("succeeded", result=RESULT), job("failed", id=5, error="Bad data.")]
    blocks = status_blocks(active, recent)
    check_snapshot("train_status", blocks)
    shown = texts(blocks)
    assert "*#9*" in shown and "*#10*" in shown and "best F1 0.8199 (step 300)" in shown
    assert "failed: Bad data." in shown
    assert "No training jobs yet" in texts(status_blocks([], []))
    detail = job_detail_blocks(job("succeeded", result=RESULT))
    assert not any(b["type"] == "actions" for b in detail) and "Disease" in texts(detail)
    help_text = train_help(["ner-small", "sentiment"])
    assert "`ner-small`" in help_text and "`/train start <preset>`" in help_text and "/train resume" in help_text


def test_many_per_type_rows_stay_within_limits():
    result = dict(RESULT, per_type={f"Type{i:03d}": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": i}
                                    for i in range(400)})
    blocks = report_blocks(job("succeeded", result=result))
    assert all(len(b["text"]["text"]) <= MAX_SECTION for b in blocks if "text" in b)
    assert len(blocks) <= MAX_BLOCKS and "Type399" in texts(blocks)
    tables = [b["text"]["text"].strip("`") for b in blocks if b.get("text", {}).get("text", "").startswith("```")]
    assert len(tables) > 2 and all(line.startswith(("Type", " ", "best", "final", "test"))
                                   for table in tables for line in table.splitlines())  # cut between lines
