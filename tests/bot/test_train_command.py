"""/train, the Cancel button and the progress reports: the real Bolt app over real HTTP, signed
requests, the fake Slack Web API and a real `LocalService` on a temporary job database. No model
is trained: each test drives a job's life by writing to the job store as the worker does."""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from bot.app import create_app
from bot.config import Settings
from bot.devslack import FakeSlack, SlackSender
from bot.serve import start_http
from bot.services import Services
from training.service import LocalService

SECRET = "test-signing-secret"
PRESET = 'task = "token-classification"\nname = "ner-small"\n[data]\ntrain = "../data/ner/train.tsv"\n' \
         '[train]\nepochs = 2\n'
RESULT = {"final": {"precision": 0.8, "recall": 0.82, "f1": 0.81, "loss": 0.05},
          "best": {"precision": 0.81, "recall": 0.83, "f1": 0.8199, "loss": 0.049, "step": 20},
          "per_type": {"Disease": {"precision": 0.81, "recall": 0.83, "f1": 0.8199, "support": 12}},
          "history": [], "steps": 20, "epochs": 2, "train_seconds": 12.5, "samples_per_s": 43.2,
          "device": "cpu", "model_dir": "/runs/job-1/best"}


def make_settings(tmp_path, **training) -> Settings:
    """Settings on tmp_path: a tiny `token<TAB>label` data file, one preset, /train for U1 and U2."""
    (tmp_path / "data" / "ner").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "ner" / "train.tsv").write_text("Aspirin\tB-Chemical\ncures\tO\nfever\tB-Disease\n\n")
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "ner-small.toml").write_text(PRESET)
    return Settings.model_validate({
        "storage": {"database": str(tmp_path / "bot.sqlite")}, "slack": {"api_retries": 1},
        "access": {"train": {"users": ["U1", "U2"]}},
        "training": {"data_roots": [str(tmp_path / "data")], "specs_dir": str(tmp_path / "specs"),
                     "runs_dir": str(tmp_path / "runs"), "database": str(tmp_path / "training.sqlite"),
                     **training}})


@contextmanager
def bot_on(fake, settings):
    """A running bot (HTTP mode) on `fake`, its own Services and LocalService; closed on exit
    (a second one on the same settings is the bot after a restart)."""
    service = LocalService(settings.training)
    services = Services(settings, training=service)
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
    server = start_http(create_app(settings, services, env), "127.0.0.1", 0)
    sender = SlackSender(f"http://127.0.0.1:{server.server_port}", SECRET, fake)
    try:
        yield SimpleNamespace(fake=fake, sender=sender, services=services, service=service, store=service.store,
                              reports=services.reports)
    finally:
        server.shutdown()
        services.close()
        service.close()


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path)


@pytest.fixture
def bot(settings):
    with FakeSlack() as fake, bot_on(fake, settings) as running:
        yield running


def start(bot, text: str = "ner-small", user: str = "U1", channel: str = "C1"):
    """/train start …; returns the job's progress message in the channel."""
    before = {m.ts for m in bot.fake.messages()}
    response = bot.sender.command("/train", f"start {text}", user_id=user, channel_id=channel)
    assert response.status == 200
    message = bot.fake.wait_for(lambda m: m.source == "chat.postMessage" and m.ts not in before
                                and m.text.startswith("Training job #"), timeout=10)
    job_id = int(re.match(r"Training job #(\d+)", message.text).group(1))
    deadline = time.monotonic() + 5
    while bot.services.state.tracked_job(job_id) is None:  # recorded right after the post
        assert time.monotonic() < deadline, "the job's message was never recorded"
        time.sleep(0.01)
    return message


def answer(bot, text: str, user: str = "U1", channel: str = "C1", expect: str = ""):
    """Send `/train <text>`; the ephemeral answer containing `expect`."""
    bot.sender.command("/train", text, user_id=user, channel_id=channel)
    message = bot.fake.wait_for(lambda m: m.source == "response_url" and expect in m.plain_text, timeout=10)
    assert message.ephemeral, message.plain_text
    return message


def updates(bot, message) -> list:
    return [c for c in bot.fake.calls_to("chat.update") if c.params.get("ts") == message.ts]


def thread(bot, message) -> list:
    return [m for m in bot.fake.messages(message.channel) if m.thread_ts == message.ts]


def run_to_the_end(store, job_id: int, state: str = "succeeded", **fields) -> None:
    """What the worker records for a job: claimed, progress, metrics, its end."""
    store.claim("test-worker", job_id)
    store.set_progress(job_id, {"phase": "training", "step": 10, "total_steps": 20, "epoch": 1.0, "epochs": 2,
                                "loss": 0.3, "samples_per_s": 40.0, "eta_s": 30, "device": "cpu",
                                "gpu_memory_mb": None})
    for step in (5, 10, 15, 20):
        store.add_metrics(job_id, step, step / 10, "train", {"loss": 1.0 / step, "learning_rate": 1e-5})
    for step in (10, 20):
        store.add_metrics(job_id, step, step / 10, "eval", {"f1": step / 25, "precision": 0.8, "loss": 0.4})
    store.finish(job_id, state, **fields)


def test_start_posts_the_progress_message_and_edits_it_only_when_progress_changes(bot):
    message = start(bot)
    assert message.text == "Training job #1 (ner-small) queued by <@U1>…" and message.thread_ts is None
    button = message.blocks[-1]["elements"][0]
    assert button["action_id"] == "train_cancel" and button["value"] == "1"
    assert bot.store.get(1).origin == {"channel": "C1", "user": "U1"}
    tracked = bot.services.state.tracked_job(1)
    assert (tracked.channel, tracked.ts) == ("C1", message.ts)

    bot.reports.tick()
    assert updates(bot, message) == []  # nothing changed since it was posted
    bot.store.claim("test-worker", 1)
    progress = {"phase": "training", "step": 5, "total_steps": 20, "epoch": 0.5, "epochs": 2, "loss": 0.4213,
                "samples_per_s": 43.21, "eta_s": 720, "device": "cuda:0 (NVIDIA H200)", "gpu_memory_mb": 2048,
                "eval": {"f1": 0.51234, "precision": 0.5, "recall": 0.52}}
    bot.store.set_progress(1, progress)
    bot.reports.tick()
    bot.reports.tick()
    assert len(updates(bot, message)) == 1
    shown = bot.fake.find_message("C1", message.ts).plain_text
    for expected in ("step 5 of 20 (25%)", "epoch 0.50 of 2", "0.4213", "F1 0.5123", "43.2 samples/s", "12 min",
                     "cuda:0 (NVIDIA H200)", "2,048 MB GPU memory", "Cancel"):
        assert expected in shown, expected
    bot.store.set_progress(1, dict(progress, step=6, loss=0.39))
    bot.reports.tick()
    assert len(updates(bot, message)) == 2 and "step 6 of 20" in bot.fake.find_message("C1", message.ts).plain_text


def test_final_report_and_plot_go_in_the_thread_once_even_after_a_restart(settings):
    with FakeSlack() as fake:
        with bot_on(fake, settings) as bot:
            message = start(bot)
            run_to_the_end(bot.store, 1, result=RESULT)
            bot.reports.tick()
            final = fake.find_message("C1", message.ts)
            assert "Succeeded" in final.plain_text and "best F1 0.8199 (step 20)" in final.plain_text
            assert not any(b["type"] == "actions" for b in final.blocks)  # no Cancel button any more
            posted = thread(bot, message)
            report = next(m for m in posted if "Final report" in m.plain_text)
            assert "Per type" in report.plain_text and "Disease" in report.plain_text
            assert "0.8199" in report.plain_text and "/runs/job-1/best" in report.plain_text
            upload = next(m for m in posted if m.files)
            assert upload.files[0]["name"] == "train-job-1-final.png"
            assert fake.file(upload.files[0]["id"]).data.startswith(b"\x89PNG")
            bot.reports.tick()
            assert len(thread(bot, message)) == len(posted) == 2
        with bot_on(fake, settings) as restarted:  # the same databases, a new process
            assert restarted.reports.tick() == 0  # reported to its end: not even looked at
            restarted.services.state.job_reported(1, done=False)  # as if it had stopped before noting that
            assert restarted.reports.tick() == 1
            assert len(thread(restarted, message)) == 2  # still only one report and one plot


def test_a_failure_is_told_at_once_with_the_log_tail(bot):
    message = start(bot)
    bot.services.start_reports()  # every 30 s, so only a poke explains a report within seconds
    log_path = bot.service.log_path(1)
    log_path.parent.mkdir(parents=True)
    log_path.write_text("".join(f"2024-05-01 10:00:{i:02d} step {i}\n" for i in range(40))
                        + "2024-05-01 10:00:41 RuntimeError: CUDA out of memory <tried 2 GiB>\n")
    run_to_the_end(bot.store, 1, "failed", error="The job's process was killed (SIGKILL; often the "
                                                 "out-of-memory killer).")
    bot.reports.poke()
    failure = bot.fake.wait_for(lambda m: m.thread_ts == message.ts and "Last lines of the log" in m.plain_text,
                                timeout=5)
    assert "SIGKILL" in failure.plain_text and "CUDA out of memory &lt;tried 2 GiB&gt;" in failure.plain_text
    assert "10:00:39 step 39" in failure.plain_text and "10:00:21 step 21" in failure.plain_text
    assert "10:00:20 step 20" not in failure.plain_text  # the last 20 lines only
    assert "/train resume 1" in failure.plain_text
    final = bot.fake.wait_for(lambda m: m.ts == message.ts and "Failed" in m.plain_text, timeout=5)
    assert "SIGKILL" in final.plain_text
    time.sleep(0.3)
    assert len(thread(bot, message)) == 1 and not any(m.files for m in thread(bot, message))

    resumed = answer(bot, "resume 1", expect="queued again")
    assert "last checkpoint" in resumed.plain_text and bot.store.get(1).state == "queued"
    bot.fake.wait_for(lambda m: m.ts == message.ts and "Queued" in m.plain_text, timeout=5)
    run_to_the_end(bot.store, 1, result=RESULT)  # the resumed run ends well: its own report
    bot.reports.poke()
    bot.fake.wait_for(lambda m: m.thread_ts == message.ts and "Final report" in m.plain_text, timeout=5)
    bot.fake.wait_for(lambda m: m.thread_ts == message.ts and m.files, timeout=5)


def test_cancel_by_button_and_by_command(bot):
    first = start(bot)
    bot.sender.action("train_cancel", "1", user_id="U9", channel_id="C1", message_ts=first.ts)
    assert bot.fake.wait_for(lambda m: "not enabled for you" in m.plain_text, timeout=10).ephemeral
    assert bot.store.get(1).state == "queued"
    bot.sender.action("train_cancel", "1", user_id="U2", channel_id="C1", message_ts=first.ts)
    reply = bot.fake.wait_for(lambda m: m.source == "response_url" and "job #1" in m.plain_text, timeout=10)
    assert reply.ephemeral and "Cancelled job #1 (ner-small) before it started" in reply.plain_text
    assert bot.store.get(1).state == "cancelled"
    bot.reports.tick()
    assert "Cancelled" in bot.fake.find_message("C1", first.ts).plain_text
    assert [m.text for m in thread(bot, first)] == [
        ":no_entry_sign: Training job #1 (ner-small) was cancelled before it started. `/train resume 1` continues it."]

    second = start(bot)
    bot.store.claim("test-worker", 2)
    reply = answer(bot, "cancel #2", expect="Cancelling job #2")
    assert bot.store.get(2).cancel_requested and bot.store.get(2).state == "running"
    bot.reports.tick()
    stopping = bot.fake.find_message("C1", second.ts)
    assert "Cancelling" in stopping.plain_text and not any(b["type"] == "actions" for b in stopping.blocks)
    answer(bot, "cancel 1", expect="has already cancelled")
    answer(bot, "cancel", expect="needs a job number")
    answer(bot, "cancel 99", expect="There is no training job 99")


def test_refusals_bad_specs_and_help_answer_ephemerally(bot):
    answer(bot, "start ner-small", user="U9", expect="/train is not enabled for you")
    assert bot.service.list() == []
    missing = answer(bot, 'start\ntask = "token-classification"\nname = "x"', expect="not a valid job spec")
    assert "'data' is required" in missing.plain_text
    bad = answer(bot, 'start\ntask = "token-classification"\n[data]\ntrain = "../data/ner/train.tsv"\n'
                      '[train]\nepochs = -1', expect="train.epochs")
    assert "greater than 0" in bad.plain_text
    outside = answer(bot, 'start\ntask = "token-classification"\n[data]\ntrain = "/etc/passwd"',
                     expect="outside the data folders")
    assert "data.train" in outside.plain_text
    answer(bot, "start nope", expect="There is no preset 'nope' (presets: ner-small)")
    answer(bot, "start", expect="Say what to train")
    answer(bot, "frobnicate", expect="Unknown subcommand 'frobnicate'")
    assert "`ner-small`" in answer(bot, "", expect="/train start <preset>").plain_text
    assert "`/train resume <id>`" in answer(bot, "help", expect="Fine-tune").plain_text
    assert bot.service.list() == []
    assert not [m for m in bot.fake.messages() if m.source == "chat.postMessage"]

    pasted = start(bot, "```toml\ntask = “token-classification”\nname = “pasted”\n[data]\n"
                        "train = “../data/ner/train.tsv”\n```", user="U2", channel="C2")
    assert pasted.text == "Training job #1 (pasted) queued by <@U2>…" and pasted.channel == "C2"
    assert bot.store.get(1).spec["data"]["train"].endswith("data/ner/train.tsv")


def test_status_lists_active_and_recent_jobs(bot):
    start(bot)
    start(bot, user="U2")
    run_to_the_end(bot.store, 1, result=RESULT)
    listed = answer(bot, "status", expect="Active jobs")
    assert "*#2*" in listed.plain_text and "queued" in listed.plain_text
    assert "*#1*" in listed.plain_text and "best F1 0.8199" in listed.plain_text
    detail = answer(bot, "status 1", expect="Per type")
    assert "Succeeded" in detail.plain_text and "Disease" in detail.plain_text


def test_a_channel_that_refuses_the_message_gets_an_invite_hint(bot):
    bot.fake.fail_next("chat.postMessage", error="not_in_channel")
    bot.sender.command("/train", "start ner-small", channel_id="C7")
    hint = bot.fake.wait_for(lambda m: "/invite @labmate" in m.plain_text, timeout=10)
    assert hint.ephemeral and "cancelled it" in hint.plain_text
    assert bot.store.get(1).state == "cancelled" and bot.services.state.tracked_jobs() == []
    assert bot.services.state.pending() == []  # nothing parked to post later


def test_a_refused_plot_upload_is_noted_in_the_thread(bot):
    message = start(bot)
    bot.fake.fail_next("files.getUploadURLExternal", error="not_allowed_token_type")
    run_to_the_end(bot.store, 1, result=RESULT)
    bot.reports.tick()
    posted = thread(bot, message)
    assert any("Final report" in m.plain_text for m in posted) and not any(m.files for m in posted)
    note = next(m for m in posted if "could not attach" in m.plain_text)
    assert "`train-job-1-final.png`" in note.plain_text and "not_allowed_token_type" in note.plain_text


def test_plots_while_running_after_every_n_evaluations(tmp_path):
    settings = make_settings(tmp_path, plot_every_evals=2)
    with FakeSlack() as fake, bot_on(fake, settings) as bot:
        message = start(bot)
        bot.store.claim("test-worker", 1)
        bot.store.add_metrics(1, 10, 1.0, "train", {"loss": 0.5})
        bot.store.add_metrics(1, 10, 1.0, "eval", {"f1": 0.4})
        bot.reports.tick()
        assert not any(m.files for m in thread(bot, message))
        bot.store.add_metrics(1, 20, 2.0, "eval", {"f1": 0.6})
        bot.reports.tick()
        bot.reports.tick()
        plots = [m for m in thread(bot, message) if m.files]
        assert [m.files[0]["name"] for m in plots] == ["train-job-1-eval-2.png"]
        assert fake.file(plots[0].files[0]["id"]).data.startswith(b"\x89PNG")
        json.dumps(plots[0].files[0])  # a plain file object
