"""/train end to end: the bot (real HTTP, signed requests, fake Slack), the real worker running a
tiny NER job on a slice of NCBI-disease in a child process, and the reports the scheduler and
the worker's state changes send: the progress message updated in place, the final metrics
report and the loss/eval PNG in its thread."""

from __future__ import annotations

import re

import pytest

from bot.devslack import FakeSlack
from tests.bot.test_train_command import bot_on, make_settings, start, thread, updates
from training.worker import Worker

pytestmark = pytest.mark.slow

SPEC = """task = "token-classification"
name = "ncbi-slice"
[data]
train = "../data/ner/ncbi-train.tsv"
eval = "../data/ner/ncbi-devel.tsv"
[train]
epochs = 2
batch_size = 8
learning_rate = 1e-4
max_length = 64
eval_every = 8
"""


def first_sentences(path, count: int) -> str:
    return "\n\n".join(path.read_text().split("\n\n")[:count]).strip() + "\n"


def test_a_job_started_in_slack_runs_and_reports_back(tmp_path, data_dir):
    settings = make_settings(tmp_path, report_seconds=1, poll_seconds=0.2, threads=1)
    ncbi = data_dir / "ner" / "ncbi-disease"
    (tmp_path / "data" / "ner" / "ncbi-train.tsv").write_text(first_sentences(ncbi / "train.tsv", 96))
    (tmp_path / "data" / "ner" / "ncbi-devel.tsv").write_text(first_sentences(ncbi / "devel.tsv", 16))
    (tmp_path / "specs" / "ncbi-slice.toml").write_text(SPEC)
    with FakeSlack() as fake, bot_on(fake, settings) as bot:
        bot.services.start_reports()
        worker = Worker(settings.training, on_change=bot.reports.poke).start()
        try:
            message = start(bot, "ncbi-slice")
            job_id = int(re.match(r"Training job #(\d+)", message.text).group(1))
            png = fake.wait_for(lambda m: m.thread_ts == message.ts and m.files, timeout=240)
        finally:
            worker.stop(timeout=30)
        job = bot.service.get(job_id)
        assert job.state == "succeeded", bot.service.logs(job_id)
        assert png.files[0]["name"].endswith(".png") and fake.file(png.files[0]["id"]).data.startswith(b"\x89PNG")

        edits = [c.params.get("text", "") for c in updates(bot, message)]
        assert any("running" in text.lower() or "training" in text.lower() for text in edits), edits
        final = fake.find_message(message.channel, message.ts)
        assert "succeeded" in final.plain_text.lower() and "Cancel" not in str(final.blocks)
        report = "\n".join(m.plain_text for m in thread(bot, message))
        f1 = job.result["best"]["f1"]
        assert f"{f1:.4f}" in report and "Disease" in report
