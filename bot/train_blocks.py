"""Block Kit rendering of `/train`: pure functions from training `Job`s to `list[dict]` (tested
against saved JSON), within Slack's limits like bot/blocks.py.

A job is one channel message edited in place (queued, running, then its final state) plus, in
its thread, the final report with the metrics table, or the failure with the log's last lines.
"""

from __future__ import annotations

from bot.blocks import MAX_SECTION, clip, code_blocks, escape

CANCEL_ACTION = "train_cancel"
EVAL_ORDER = ("f1", "precision", "recall", "accuracy", "loss", "perplexity")
COLUMN_ORDER = ("precision", "recall", "f1", "accuracy", "loss", "perplexity", "support")
NAMES = {"f1": "F1"}
PHASES = {"loading": "loading the model and data", "evaluating": "evaluating", "saving": "saving a checkpoint",
          "done": "finishing"}
LOG_CHARS = MAX_SECTION - 200


def fmt_metric(name: str, value) -> str:
    """A metric as people read it: F1/loss to 4 decimals, perplexity to 2, support as a count."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value) if value is not None else "–"
    return f"{int(value):,}" if name == "support" else f"{value:.2f}" if name == "perplexity" else f"{value:.4f}"


def fmt_duration(seconds) -> str:
    """'45 s', '12 min', '2 h 05 min', '3 d 4 h'."""
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "–"
    minutes = round(seconds / 60)
    if seconds < 60 or minutes < 60:
        return f"{round(seconds)} s" if seconds < 60 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def fmt_rate(value) -> str:
    """Samples per second with one decimal ('43.2')."""
    return f"{value:.1f}" if isinstance(value, (int, float)) else "–"


def fmt_epochs(value) -> str:
    """An epoch count: '3' or '1.25'."""
    return "?" if not isinstance(value, (int, float)) else f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


def metric_summary(metrics: dict | None, limit: int = 4) -> str:
    """'F1 0.8123 · precision 0.8000 · recall 0.8250 · loss 0.0421' (the usual ones first)."""
    metrics = metrics or {}
    names = [n for n in EVAL_ORDER if n in metrics] + sorted(
        n for n in metrics if n not in EVAL_ORDER and n not in ("step", "support", "epoch"))
    return " · ".join(f"{NAMES.get(n, n)} {fmt_metric(n, metrics[n])}" for n in names[:limit]
                      if isinstance(metrics[n], (int, float)))


def best_summary(best) -> str:
    """The best checkpoint so far: 'F1 0.8123 (step 300)'."""
    if isinstance(best, dict):
        head = metric_summary({k: v for k, v in best.items() if k != "step"}, limit=1)
        return f"{head} (step {best['step']})" if head and "step" in best else head
    return fmt_metric("best", best) if isinstance(best, (int, float)) else ""


def metrics_table(rows: list[tuple[str, dict]]) -> str:
    """Rows of metrics as an aligned plain-text table (for a code block); columns are the metrics
    any row has, the usual ones first."""
    rows = [(label, {k: v for k, v in m.items() if isinstance(v, (int, float))}) for label, m in rows if m]
    present = {name for _, metrics in rows for name in metrics} - {"step", "epoch"}
    columns = [c for c in COLUMN_ORDER if c in present] + sorted(present - set(COLUMN_ORDER))
    if not rows or not columns:
        return ""
    width = max(len(label) for label, _ in rows)
    cells = [[fmt_metric(c, m[c]) if c in m else "" for c in columns] for _, m in rows]
    sizes = [max(len(NAMES.get(c, c)), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [" " * width + "".join(f"  {NAMES.get(c, c):>{s}}" for c, s in zip(columns, sizes))]
    for (label, _), row in zip(rows, cells):
        lines.append((f"{label:<{width}}" + "".join(f"  {cell:>{s}}" for cell, s in zip(row, sizes))).rstrip())
    return "\n".join(lines)


def job_title(job) -> str:
    """'Training job #3 (ner-small)', mrkdwn-escaped (a job's name is whatever its spec says)."""
    return f"Training job #{job.id} ({escape(job.name)})"


def progress_line(job) -> str:
    """Where a running job is: 'epoch 1.20 of 3 · step 120 of 300 (40%)'."""
    p = job.progress or {}
    step, total = p.get("step"), p.get("total_steps")
    parts = []
    if p.get("epoch") is not None:
        parts.append(f"epoch {float(p['epoch']):.2f} of {fmt_epochs(p.get('epochs'))}")
    if isinstance(step, int) and isinstance(total, int) and total > 0:
        parts.append(f"step {step:,} of {total:,} ({100 * step // total}%)")
    elif isinstance(step, int):
        parts.append(f"step {step:,}")
    return " · ".join(parts)


def state_line(job) -> str:
    """The job's state in one mrkdwn line, with what to do next where there is something."""
    p, result = job.progress or {}, job.result or {}
    took = fmt_duration((job.finished_at or 0) - (job.started_at or job.finished_at or 0))
    if job.state == "queued":
        return ":hourglass: *Queued*: waiting for a free worker."
    if job.state == "running" and job.cancel_requested:
        return ":octagonal_sign: *Cancelling*: the job stops at its next step, after saving a checkpoint."
    if job.state == "running":
        phase = p.get("phase") or "loading"
        if phase in PHASES:
            return f":gear: *Running*: {PHASES[phase]}" + (f" · {progress_line(job)}" if p.get("step") else "") + "."
        return f":runner: *Training*: {progress_line(job) or 'starting'}."
    if job.state == "succeeded":
        best = best_summary(result.get("best"))
        return f":white_check_mark: *Succeeded* in {took}" + (f": best {best}" if best else "") + \
            ". The report is in the thread."
    resume = f"`/train resume {job.id}` continues from the last checkpoint."
    if job.state == "failed":
        return f":x: *Failed* after {took}: {escape(clip(job.error or 'no reason given', 500).rstrip('.'))}. " \
               f"The log's last lines are in the thread; {resume}"
    where = f" at {progress_line(job)}" if p.get("step") else ""
    return f":no_entry_sign: *Cancelled*{where}. {resume}"


def progress_text(job) -> str:
    """The message's fallback text (notifications, screen readers)."""
    user = (job.origin or {}).get("user")
    by = f" by <@{user}>" if user else ""
    if job.state == "queued":
        return f"{job_title(job)} queued{by}…"
    if job.state == "running":
        loss = (job.progress or {}).get("loss")
        tail = f", loss {fmt_metric('loss', loss)}" if isinstance(loss, (int, float)) else ""
        return f"{job_title(job)} is running: {progress_line(job) or 'starting'}{tail}."
    if job.state == "failed":
        return clip(f"{job_title(job)} failed: {escape(job.error or 'no reason given')}", 3000)
    return f"{job_title(job)} {job.state}."


def progress_fields(job) -> list[dict]:
    """Loss, latest eval, best, speed, ETA and device of a running job (those it has)."""
    p = job.progress or {}
    device = p.get("device")
    if device and isinstance(p.get("gpu_memory_mb"), (int, float)):
        device = f"{device}\n{p['gpu_memory_mb']:,.0f} MB GPU memory"
    values = [("Loss", fmt_metric("loss", p["loss"]) if isinstance(p.get("loss"), (int, float)) else ""),
              ("Latest eval", metric_summary(p.get("eval"))), ("Best", best_summary(p.get("best"))),
              ("Speed", f"{fmt_rate(p['samples_per_s'])} samples/s" if p.get("samples_per_s") else ""),
              ("ETA", fmt_duration(p["eta_s"]) if isinstance(p.get("eta_s"), (int, float)) else ""),
              ("Device", escape(device or ""))]
    return [{"type": "mrkdwn", "text": clip(f"*{name}*\n{value}", 2000)} for name, value in values if value]


def result_fields(job) -> list[dict]:
    """Steps, epochs, time, speed and device of a finished job's result."""
    r = job.result or {}
    values = [("Steps", f"{r['steps']:,}" if isinstance(r.get("steps"), int) else ""),
              ("Epochs", fmt_epochs(r["epochs"]) if r.get("epochs") is not None else ""),
              ("Training time", fmt_duration(r["train_seconds"]) if r.get("train_seconds") is not None else ""),
              ("Speed", f"{fmt_rate(r['samples_per_s'])} samples/s" if r.get("samples_per_s") else ""),
              ("Device", escape(r.get("device") or ""))]
    return [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in values if value]


def cancel_button(job_id: int) -> dict:
    """The Cancel button (with a confirmation) of a queued or running job."""
    return {"type": "actions", "block_id": f"train:{job_id}", "elements": [{
        "type": "button", "action_id": CANCEL_ACTION, "style": "danger", "value": str(job_id),
        "text": plain("Cancel"),
        "confirm": {"title": plain(f"Cancel job #{job_id}?"), "confirm": plain("Cancel the job"),
                    "deny": plain("Keep it running"), "text": {"type": "mrkdwn", "text": "It stops after saving "
                    f"a checkpoint; `/train resume {job_id}` continues it later."}}}]}


def plain(text: str) -> dict:
    """A plain_text object."""
    return {"type": "plain_text", "text": text}


def section(text: str) -> dict:
    """A mrkdwn section (clipped to Slack's limit)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def context(text: str) -> dict:
    """A context line in mrkdwn."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, 2000)}]}


def progress_blocks(job, actions: bool = True) -> list[dict]:
    """The job's channel message in its current state (a Cancel button while it can be cancelled)."""
    user = (job.origin or {}).get("user")
    by = f" · started by <@{user}>" if user else ""
    head = f"*Training job #{job.id}* · `{escape(job.name)}` · {escape(job.task)}{by}"
    blocks = [section(f"{head}\n{state_line(job)}")]
    fields = progress_fields(job) if job.state == "running" else result_fields(job) if job.state == "succeeded" \
        else []
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    if actions and (job.state == "queued" or (job.state == "running" and not job.cancel_requested)):
        blocks.append(cancel_button(job.id))
    return blocks


def metrics_blocks(result: dict) -> list[dict]:
    """The overall metrics (best, final, test) and the per-type rows (NER) as code blocks."""
    best = dict(result.get("best") or {})
    step = best.pop("step", None)
    overall = metrics_table([(f"best (step {step})" if step is not None else "best", best),
                             ("final", result.get("final") or {}), ("test", result.get("test") or {})])
    per_type = metrics_table(sorted((str(k), v) for k, v in (result.get("per_type") or {}).items()
                                    if isinstance(v, dict)))
    blocks = []
    for title, table in (("Metrics", overall), ("Per type", per_type)):
        if table:
            blocks.append(section(f"*{title}*"))
            blocks += table_blocks(escape(table))
    return blocks


def table_blocks(table: str) -> list[dict]:
    """A table in code blocks, cut between lines to stay within a section's size."""
    chunks, current = [], ""
    for line in table.splitlines():
        if current and len(current) + len(line) + 1 > MAX_SECTION - 10:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    return [block for chunk in chunks + [current] for block in code_blocks(chunk)]


def report_blocks(job) -> list[dict]:
    """The final report posted in the thread of a succeeded job (call `split_messages` before posting)."""
    result = job.result or {}
    blocks = [section(f"*Final report of training job #{job.id}* `{escape(job.name)}` ({escape(job.task)})")]
    blocks += [{"type": "section", "fields": result_fields(job)}] if result_fields(job) else []
    blocks += metrics_blocks(result) or [section("No metrics were recorded.")]
    if result.get("model_dir"):
        blocks.append(context(f"Best model saved in `{escape(str(result['model_dir']))}`"))
    return blocks


def report_text(job) -> str:
    """Fallback text of the final report."""
    best = best_summary((job.result or {}).get("best"))
    return f"Final report of {job_title(job)}" + (f": best {best}." if best else ".")


def failure_blocks(job, log_tail: str) -> list[dict]:
    """The thread message of a failed job: the error, the log's last lines, and what to do."""
    tail = escape((log_tail or "").strip())
    tail = ("…" + tail[-LOG_CHARS:]) if len(tail) > LOG_CHARS else tail
    return [section(f":x: *{job_title(job)} failed*: {escape(job.error or 'no reason given')}"),
            section("*Last lines of the log*"), code_blocks(tail or "(the log is empty)")[0],
            context(f"Fix the cause, then `/train resume {job.id}` continues from the last checkpoint "
                    "(or `/train start` a corrected spec).")]


def cancelled_text(job) -> str:
    """The short note posted in the thread of a cancelled job."""
    where = f" at {progress_line(job)}" if (job.progress or {}).get("step") else " before it started"
    return f":no_entry_sign: {job_title(job)} was cancelled{where}. `/train resume {job.id}` continues it."


def status_line(job) -> str:
    """One job in a list: '• *#3* `ner-small`: training, epoch … · loss 0.0421 · <@U1>'."""
    p, result = job.progress or {}, job.result or {}
    if job.state == "running":
        what = [f"{p.get('phase') or 'running'}", progress_line(job),
                f"loss {fmt_metric('loss', p['loss'])}" if isinstance(p.get("loss"), (int, float)) else "",
                f"ETA {fmt_duration(p['eta_s'])}" if isinstance(p.get("eta_s"), (int, float)) else ""]
    elif job.state == "succeeded":
        what = ["succeeded", f"best {best_summary(result.get('best'))}" if result.get("best") else ""]
    else:
        what = [f"failed: {clip(job.error or '', 120)}" if job.state == "failed" else job.state]
    user = (job.origin or {}).get("user")
    text = " · ".join(escape(w) for w in what if w) + (f" · <@{user}>" if user else "")
    return f"• *#{job.id}* `{escape(job.name)}`: {text}"


def status_blocks(active: list, recent: list) -> list[dict]:
    """`/train status`: the queued and running jobs, then the recent finished ones."""
    if not active and not recent:
        return [section("No training jobs yet. `/train start <preset>` starts one; `/train help` says more.")]
    blocks = []
    for title, jobs in (("Active jobs", active), ("Recent jobs", recent)):
        lines = "\n".join(status_line(job) for job in jobs) or "None."
        blocks.append(section(f"*{title}*\n{lines}"))
    blocks.append(context("`/train status <id>` shows one job · `/train cancel <id>` · `/train resume <id>`"))
    return blocks


def job_detail_blocks(job) -> list[dict]:
    """`/train status <id>`: the job's message without buttons, plus its metrics when it succeeded."""
    blocks = progress_blocks(job, actions=False)
    if job.state == "succeeded":
        blocks += metrics_blocks(job.result or {})
    return blocks


def train_help(presets: list[str]) -> str:
    """The usage of /train, listing the presets."""
    names = ", ".join(f"`{escape(name)}`" for name in presets) or "none yet (spec files in the specs folder)"
    return ("*Fine-tune a model and follow it here*\n"
            "• `/train start <preset>`: run a preset job spec. Presets: " + names + "\n"
            "• `/train start` then a TOML job spec on the next lines (`task = \"token-classification\"`, "
            "`[data] train = \"…\"`, `[train] epochs = 3`); relative paths are in the specs folder.\n"
            "• `/train status`: active and recent jobs; `/train status <id>`: one job in detail\n"
            "• `/train cancel <id>`: stop a job (it saves a checkpoint first)\n"
            "• `/train resume <id>`: continue a failed or cancelled job from its last checkpoint\n"
            "Progress is shown in the channel message, updated as the job runs; the final report "
            "and the loss/eval curves arrive in its thread.")
