"""/draft and the papers-results "Draft related work from these" button: the real Bolt app over
real HTTP, signed requests, the fake Slack Web API, the real drafting pipeline and library, and a
scripted model that writes from the evidence it is given (or fails like a dead endpoint)."""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from bot.app import create_app
from bot.config import Settings
from bot.devslack import FakeSlack, SlackSender
from bot.serve import start_http
from bot.services import Services
from tests.drafting.fakes import continuation
from drafting.generator import Generation, GenerationError, cut_at_stop

SECRET = "test-signing-secret"
UPDATE_SECONDS = 0.2
PAPERS = [
    {"id": "photo", "title": "Photosynthesis in cyanobacteria under high light", "year": 2019,
     "authors": ["Ana Ortiz"], "abstract": "Cyanobacteria repair photosystem II quickly when light is intense. "
                                           "Repair rates doubled under high light."},
    {"id": "leaf", "title": "Light harvesting in plant photosynthesis", "year": 2022, "authors": ["Li Wei", "Sam Cole"],
     "abstract": "Plant antenna complexes dissipate excess light energy as heat to protect photosynthesis."},
    {"id": "lm", "title": "Scaling transformer language models", "year": 2021, "authors": ["Cara Diaz"],
     "abstract": "Larger transformer language models trained on more tokens predict text better."},
    {"id": "ice", "title": "Glacier melt and sea level rise", "year": 2015, "authors": ["Dan Berg"],
     "abstract": "Greenland glaciers lose ice mass faster as ocean temperatures increase."},
    {"id": "coral", "title": "Coral bleaching under ocean warming", "year": 2020, "authors": ["Eve Moss"],
     "abstract": "Corals expel their symbiotic algae when sea water stays warm for weeks."},
]


class ScriptedGenerator:
    """A Generator for real: answers each prompt with one sentence taken from the evidence it was
    given (ending with the `[n]` asked for), streamed word by word with `delay` seconds between
    words; with `fail` set it raises GenerationError like an endpoint that is down."""

    name = "scripted"

    def __init__(self, delay: float = 0.0, fail: bool = False):
        self.delay, self.fail = delay, fail
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def generate(self, messages, *, max_new_tokens, stop=(), on_text=None, prefix=""):
        if self.fail:
            raise GenerationError("The drafting model at http://127.0.0.1:9/v1 is not answering: start it, "
                                  "or set [drafting] backend.")
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            return self._stream(continuation(self.reply(messages[-1]["content"]), prefix), stop, on_text)
        finally:
            with self._lock:
                self.running -= 1

    def _stream(self, text, stop, on_text):
        start = time.perf_counter()
        pieces = re.findall(r"\S+\s*", text)
        for piece in pieces:
            time.sleep(self.delay)
            if on_text:
                on_text(piece)
        return Generation(cut_at_stop(text, stop)[0], len(pieces), time.perf_counter() - start)

    @staticmethod
    def reply(prompt: str) -> str:
        asked = re.findall(r"\[(\d+)\]", prompt)
        evidence = re.search(r"Evidence \[\d+\]:[^.]*\.\s*([^.\n]+)", prompt)
        if asked and evidence:
            return f"{evidence.group(1).strip()} [{asked[-1]}]."
        return "This question matters for the field."


@contextmanager
def running_bot(tmp_path, library, generator):
    """A running bot (HTTP mode) on `library` with `generator`, the fake Slack and a signed
    sender; /draft is enabled for U1 and U2 only."""
    settings = Settings.model_validate({
        "index": {"dir": str(library.folder)}, "storage": {"database": str(tmp_path / "bot.sqlite")},
        "slack": {"api_retries": 1, "update_seconds": UPDATE_SECONDS},
        "access": {"draft": {"users": ["U1", "U2"]}}, "drafting": {"k": 3},
        "training": {"database": str(tmp_path / "training.sqlite"), "runs_dir": str(tmp_path / "runs")},
    })
    with FakeSlack() as fake:
        services = Services(settings, library=library, generator=generator)
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
        server = start_http(create_app(settings, services, env), "127.0.0.1", 0)
        sender = SlackSender(f"http://127.0.0.1:{server.server_port}", SECRET, fake)
        try:
            yield SimpleNamespace(fake=fake, sender=sender, services=services, generator=generator)
        finally:
            server.shutdown()
            services.close()


@pytest.fixture
def library(library_of):
    """The 5-paper library."""
    return library_of(PAPERS)


@pytest.fixture
def bot(tmp_path, library):
    """The bot with a slow scripted model (so its live edits can be watched)."""
    with running_bot(tmp_path, library, ScriptedGenerator(delay=0.03)) as running:
        yield running


def send_draft(bot, text: str, user: str = "U1", channel: str = "C1"):
    """Send /draft; check the ack came within Slack's 3 s and the placeholder within a second."""
    before = {m.ts for m in bot.fake.messages()}
    start = time.perf_counter()
    response = bot.sender.command("/draft", text, user_id=user, channel_id=channel)
    assert response.status == 200 and time.perf_counter() - start < 3.0
    placeholder = bot.fake.wait_for(lambda m: m.source == "chat.postMessage" and m.channel == channel
                                    and m.ts not in before and m.text.startswith("Drafting"), timeout=1.0)
    assert placeholder.thread_ts is None and not placeholder.ephemeral and f"<@{user}>" in placeholder.text
    return placeholder


def wait_until_done(bot, placeholder, timeout: float = 60):
    """The thread's file share (the last thing a draft posts), then everything in the thread."""
    bot.fake.wait_for(lambda m: m.thread_ts == placeholder.ts and m.files, timeout=timeout)
    return [m for m in bot.fake.messages(placeholder.channel) if m.thread_ts == placeholder.ts]


def shared_files(thread) -> dict[str, str]:
    return {f["name"]: f for m in thread for f in m.files}


def file_text(bot, info) -> str:
    return bot.fake.file(info["id"]).data.decode("utf-8")


def live_updates(bot, placeholder):
    """The chat.update calls that showed text being written, as (time, text so far)."""
    updates = []
    for call in bot.fake.calls_to("chat.update"):
        blocks = call.params.get("blocks")
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks or []
        if call.params.get("ts") == placeholder.ts and "writing…" in json.dumps(blocks, ensure_ascii=False):
            updates.append((call.timestamp, blocks[1]["text"]["text"]))
    return updates


def bib_keys(bib: str) -> set[str]:
    return set(re.findall(r"@\w+\s*\{\s*([^,\s]+)\s*,", bib))


def expected_draft(bot, request):
    """The same draft made directly by the pipeline (the scripted model is deterministic)."""
    from drafting.pipeline import draft

    return draft(request, library=bot.services.library(), generator=ScriptedGenerator(),
                 settings=bot.services.settings.drafting)


def test_draft_is_written_live_then_published_in_the_thread(bot):
    from drafting.types import DraftRequest

    placeholder = send_draft(bot, "related-work light and photosynthesis")
    assert "Drafting the related work section on _light and photosynthesis_" in placeholder.text
    thread = wait_until_done(bot, placeholder)
    expected = expected_draft(bot, DraftRequest("related-work", "light and photosynthesis"))
    assert expected.citations, "the scripted model's sentences should keep their citations"

    updates = live_updates(bot, placeholder)
    assert len(updates) >= 3, updates
    gaps = [later[0] - earlier[0] for earlier, later in zip(updates, updates[1:])]
    assert min(gaps) >= UPDATE_SECONDS * 0.9, gaps
    texts = [text for _, text in updates]
    assert all(a != b for a, b in zip(texts, texts[1:])) and len(texts[-1]) > len(texts[0])

    final = bot.fake.find_message("C1", placeholder.ts)
    assert not final.text.startswith("Drafting") and "writing…" not in final.plain_text
    assert f"{len(expected.citations)} source" in final.plain_text and "cited" in final.plain_text

    posted = "\n".join(m.plain_text for m in thread if not m.files)
    assert "References" in posted
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", expected.text)}
    assert {int(n) for n in re.findall(r"\[(\d+)\]", posted.split("References")[0])} <= cited
    assert cited == {c.n for c in expected.citations}
    assert all(c.title in posted for c in expected.citations)

    files = shared_files(thread)
    assert sorted(files) == ["related-work-light-and-photosynthesis.bib", "related-work-light-and-photosynthesis.md"]
    assert file_text(bot, files["related-work-light-and-photosynthesis.md"]) == expected.markdown()
    bib = file_text(bot, files["related-work-light-and-photosynthesis.bib"])
    assert bib == expected.bibtex and bib_keys(bib) == {c.key for c in expected.citations}


def test_help_refusals_and_bad_requests_answer_ephemerally(bot):
    fake, sender = bot.fake, bot.sender
    cases = [("", "U1", "`/draft <section> <topic>`"), ("help", "U1", "`related-work`"),
             ("related-work glaciers", "U9", "not enabled for you"),
             ("poem glaciers", "U1", "Unknown section 'poem'"), ("intro", "U1", "Add a topic"),
             ("results run:r42", "U1", "`run:r42` is not a training job number")]
    for text, user, answer in cases:
        sender.command("/draft", text, user_id=user, channel_id="C1")
        message = fake.wait_for(lambda m: answer in m.plain_text, timeout=10)
        assert message.ephemeral and message.source == "response_url", text
    assert "related-work" in fake.wait_for(lambda m: "Unknown section" in m.plain_text).plain_text
    time.sleep(0.5)
    assert not [m for m in fake.messages() if m.source == "chat.postMessage"]  # no placeholder for any of them
    assert bot.generator.calls == 0


def test_results_from_a_training_job_report_its_measured_numbers(bot):
    """`/draft results run:N` drafts from job N's stored result: the table and every number in
    the text come from the job; a job that has not succeeded gets a clear answer."""
    store = bot.services.training().store
    done = store.submit(name="ncbi", task="token-classification", spec={}, spec_text="")
    store.claim("w")
    result = {"task": "token-classification", "base_model": "minilm", "steps": 1700, "epochs": 5,
              "final": {"precision": 0.8123, "recall": 0.8456, "f1": 0.8286, "loss": 0.0612},
              "best": {"f1": 0.8286, "step": 1700},
              "per_type": {"Disease": {"precision": 0.8123, "recall": 0.8456, "f1": 0.8286, "support": 787}}}
    store.finish(done.id, "succeeded", result=result)
    pending = store.submit(name="other", task="token-classification", spec={}, spec_text="")

    placeholder = send_draft(bot, f"results run:{done.id}")
    assert f"training job {done.id}" in placeholder.text
    thread = wait_until_done(bot, placeholder)
    table = next(file_text(bot, f) for f in shared_files(thread).values() if f["name"].endswith(".md"))
    assert "0.8286" in table and "Disease" in table
    bot.sender.command("/draft", f"results run:{pending.id}", user_id="U1", channel_id="C1")
    failed = bot.fake.wait_for(lambda m: f"Training job {pending.id} is queued" in m.plain_text, timeout=10)
    assert "succeeded" in failed.plain_text


def test_generation_failure_turns_the_placeholder_into_an_error(bot):
    bot.generator.fail = True
    placeholder = send_draft(bot, "related-work coral bleaching")
    failed = bot.fake.wait_for(lambda m: m.ts == placeholder.ts and "Could not draft" in m.plain_text, timeout=30)
    assert "not answering" in failed.plain_text and not failed.text.startswith("Drafting")
    assert not [m for m in bot.fake.messages() if m.thread_ts == placeholder.ts]


def test_a_channel_the_bot_is_not_in_gets_an_invite_hint(bot):
    bot.fake.fail_next("chat.postMessage", error="not_in_channel")
    bot.sender.command("/draft", "related-work glaciers", channel_id="C7")
    hint = bot.fake.wait_for(lambda m: "/invite @labmate" in m.plain_text, timeout=10)
    assert hint.ephemeral and bot.services.state.pending() == []  # nothing parked to post later
    time.sleep(0.5)
    assert bot.generator.calls == 0


def test_papers_button_drafts_related_work_from_the_listed_papers(bot):
    fake, sender = bot.fake, bot.sender
    sender.command("/papers", "photosynthesis light year:2019-2019", channel_id="C2")
    results = fake.wait_for(lambda m: m.source == "response_url" and "Photosynthesis" in m.plain_text, timeout=30)
    button = next(e for b in results.blocks if b["type"] == "actions" for e in b["elements"]
                  if e["action_id"] == "draft_from_results")
    value = json.loads(button["value"])
    assert value == {"topic": "photosynthesis light", "papers": ["photo"]}  # "leaf" (2022) was filtered out

    sender.action("draft_from_results", button["value"], user_id="U9", channel_id="C2", message_ts=results.ts)
    assert fake.wait_for(lambda m: "not enabled for you" in m.plain_text, timeout=10).ephemeral
    sender.action("draft_from_results", button["value"], user_id="U2", channel_id="C2", message_ts=results.ts)
    placeholder = fake.wait_for(lambda m: m.source == "chat.postMessage" and "from the paper listed" in m.text,
                                timeout=5)
    assert placeholder.channel == "C2" and "<@U2>" in placeholder.text
    files = shared_files(wait_until_done(bot, placeholder))
    assert bib_keys(file_text(bot, files["related-work-photosynthesis-light.bib"])) == {"photo"}
    assert "Light harvesting in plant" not in file_text(bot, files["related-work-photosynthesis-light.md"])


def test_second_draft_waits_for_the_model_and_says_so(bot):
    first = send_draft(bot, "related-work glaciers and sea level")
    bot.fake.wait_for(lambda m: m.ts == first.ts and "writing…" in m.plain_text, timeout=30)
    second = send_draft(bot, "related-work coral reefs", user="U2")
    bot.fake.wait_for(lambda m: m.ts == second.ts and "Queued" in m.plain_text, timeout=10)
    wait_until_done(bot, first)
    wait_until_done(bot, second)
    assert bot.generator.most_running == 1


def test_refused_upload_is_reported_with_the_files_content(bot):
    bot.fake.fail_next("files.getUploadURLExternal", error="not_allowed_token_type")
    placeholder = send_draft(bot, "related-work glaciers")
    notice = bot.fake.wait_for(lambda m: m.thread_ts == placeholder.ts and "could not attach `related-work-"
                               "glaciers.bib`" in m.plain_text, timeout=60)
    assert "not_allowed_token_type" in notice.plain_text and "@" in notice.plain_text  # the entries themselves
    assert bot.fake.wait_for(lambda m: m.thread_ts == placeholder.ts and "could not attach `related-work-"
                             "glaciers.md`" in m.plain_text, timeout=10)


@pytest.mark.slow
def test_real_model_drafts_end_to_end(tmp_path, library, request):
    """The same flow with the real default model (SmolLM2) instead of the scripted one."""
    try:
        model = request.getfixturevalue("generator")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py has no `generator` fixture (the real drafting model) yet")
    with running_bot(tmp_path, library, model) as bot:
        placeholder = send_draft(bot, "related-work photosynthesis under high light")
        thread = wait_until_done(bot, placeholder, timeout=300)
        final = bot.fake.find_message("C1", placeholder.ts)
        assert "cited" in final.plain_text and not final.text.startswith("Drafting")
        files = shared_files(thread)
        md = file_text(bot, files["related-work-photosynthesis-under-high-light.md"])
        bib = file_text(bot, files["related-work-photosynthesis-under-high-light.bib"])
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", md.split("### References")[0])}
    assert numbers and len(bib_keys(bib)) == len(numbers) and numbers <= set(range(1, len(numbers) + 1))
    assert bib_keys(bib) <= {p["id"] for p in PAPERS}
