"""`/draft <section> <topic>` and the "Draft related work from these" button on /papers results.

A draft is written live: a placeholder is posted in the channel at once, edited with the text
so far while the model writes (at most once per `[slack] update_seconds`), then turned into a
short summary; the full text, references, warnings and the `.md`/`.bib` files go in its thread.
Whatever happens, the placeholder never stays at "Drafting…".
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

from bot.blocks import DRAFT_ACTION, text_blocks
from bot.draft_blocks import (draft_help, failure_blocks, live_blocks, placeholder_blocks, placeholder_text,
                              summary_blocks, summary_text, thread_messages)
from bot.errors import user_message
from core.errors import QueryError, UserError
from drafting.sections import SECTIONS, parse_section
from drafting.types import DraftRequest

log = logging.getLogger("labmate.draft")

REFUSED = "Sorry, /draft is not enabled for you in this channel. Ask whoever runs labmate to add you."
CANNOT_POST = ("I couldn't post in this channel. If I'm not in it, invite me with `/invite @labmate`, "
               "then try again.")
RUN_WORD = re.compile(r"^run:#?(\S*)$", re.I)
STALE_BUTTON = "This button is out of date: run `/papers` again and use the new one."


@dataclass
class DraftJob:
    """One draft on its way: what was asked, by whom, and where its messages go."""

    request: DraftRequest
    user: str
    channel: str
    response_url: str | None
    ts: str | None = None  # the placeholder's, once posted

    @property
    def title(self) -> str:
        """The section's display name ("Related work")."""
        return SECTIONS[self.request.section].title


def register(app, services) -> None:
    """`/draft` and the `draft_from_results` button."""

    @app.command("/draft")
    def draft_command(ack, command):
        ack()  # within Slack's 3 s, before any parsing
        user, channel, url = command.get("user_id"), command.get("channel_id"), command.get("response_url")
        reply = _replier(services, url)
        if not services.settings.access.draft.allows(user, channel):
            reply(REFUSED)
            return
        try:
            parsed = parse_draft(command.get("text", ""))
        except UserError as exc:
            reply(user_message(exc))
            return
        if isinstance(parsed, str):
            reply(parsed)
            return
        start_draft(services, DraftJob(parsed, user, channel, url))

    @app.action(DRAFT_ACTION)
    def draft_button(ack, body, action):
        ack()
        user = (body.get("user") or {}).get("id")
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        url = body.get("response_url")
        reply = _replier(services, url)
        if not services.settings.access.draft.allows(user, channel):
            reply(REFUSED)
            return
        try:
            request = request_from_button(action.get("value"))
        except UserError as exc:
            reply(user_message(exc))
            return
        start_draft(services, DraftJob(request, user, channel, url))


def parse_draft(text: str) -> DraftRequest | str:
    """The request `/draft <section> <topic>` asks for, or the text to answer instead (usage;
    where drafting from a training run is). An unknown section or a missing topic raises a
    UserError that says what to type."""
    words = (text or "").split()
    if not words or words[0].lower() in ("help", "-h", "--help", "?"):
        return draft_help()
    spec = parse_section(words[0])
    run = next((m.group(1) for w in words[1:] if (m := RUN_WORD.match(w))), None)
    if spec.name == "results" and run is not None:
        if not run.isdigit():
            raise QueryError(f"`run:{run}` is not a training job number; `/train status` lists them, "
                             "e.g. `/draft results run:12`.")
        return DraftRequest(section="results", topic=f"training job {run}", metrics={"job": int(run)})
    topic = " ".join(words[1:])
    if not topic:
        raise QueryError(f"Add a topic after the section, e.g. `/draft {spec.name} graph neural networks "
                         "for molecules`.")
    return DraftRequest(section=spec.name, topic=topic)


def request_from_button(value: str | None) -> DraftRequest:
    """The related-work request a "Draft related work from these" button carries."""
    try:
        data = json.loads(value or "")
    except ValueError:
        data = None
    if not isinstance(data, dict) or not str(data.get("topic") or "").strip() \
            or not isinstance(data.get("papers"), list) or not data["papers"]:
        raise QueryError(STALE_BUTTON)
    return DraftRequest(section="related-work", topic=str(data["topic"]).strip(),
                        papers=[str(p) for p in data["papers"]])


def start_draft(services, job: DraftJob) -> None:
    """Post the placeholder in the channel now, then draft on a worker; if the channel refuses
    the placeholder, tell the user (ephemerally) to invite the bot."""
    request = job.request
    text = placeholder_text(job.title, request.topic, job.user, len(request.papers))
    posted = services.messenger.post(park=False, channel=job.channel, text=text,
                                     blocks=placeholder_blocks(job.title, request.topic, job.user, len(request.papers)))
    if not posted:
        _replier(services, job.response_url)(CANNOT_POST)
        return
    job.channel, job.ts = posted.get("channel") or job.channel, posted["ts"]
    services.submit(lambda: run_draft(services, job), lambda exc: report_failure(services, job, exc), slow=True)


def run_draft(services, job: DraftJob) -> None:
    """Write the draft (one at a time per process), showing it live, then publish it."""
    from drafting.pipeline import collect_sources, draft

    live = LiveDraft(services.messenger, job, services.settings.slack.update_seconds)
    lock = services.generation_lock
    if not lock.acquire(blocking=False):
        request = job.request
        services.messenger.update(park=False, channel=job.channel, ts=job.ts, text=placeholder_text(
            job.title, request.topic, job.user, len(request.papers), queued=True), blocks=placeholder_blocks(
            job.title, request.topic, job.user, len(request.papers), queued=True))
        lock.acquire()
    try:
        sources = None
        if job.request.metrics is not None and "job" in job.request.metrics:
            job.request.metrics = run_metrics(services, job.request.metrics["job"])
        elif job.request.metrics is None:
            with services.library_lock:  # retrieval must not interleave with searches and ingests
                sources = collect_sources(job.request, services.library(), services.settings.drafting)
        result = draft(job.request, generator=services.generator(), settings=services.settings.drafting,
                       on_update=live, sources=sources)
    finally:
        live.close()
        lock.release()
    publish(services, job, result)


def run_metrics(services, job_id: int) -> dict:
    """A finished training job's metrics (the shape `labmate draft results --metrics` reads)."""
    from drafting.metrics import normalize_metrics

    run = services.training().get(job_id)
    if run.state != "succeeded" or not run.result:
        raise UserError(f"Training job {job_id} is {run.state}; a results section needs a job that succeeded "
                        "(`/train status` lists them).")
    metrics = {**run.result, "id": job_id, "task": run.task, "name": run.name}
    normalize_metrics(metrics, f"training job {job_id}")
    return metrics


def publish(services, job: DraftJob, result) -> None:
    """The placeholder becomes the summary; the thread gets the full text and the two files."""
    messenger = services.messenger
    messenger.update(channel=job.channel, ts=job.ts, text=summary_text(result, job.title, job.user),
                     blocks=summary_blocks(result, job.title, job.user))
    for fallback, blocks in thread_messages(result, job.title):
        messenger.post(channel=job.channel, thread_ts=job.ts, text=fallback, blocks=blocks)
    messenger.upload(job.channel, job.ts, draft_files(result, job.request.section))
    services.state.record_draft(job.channel, job.user, f"{job.title}: {result.topic}")  # the weekly report counts it


def report_failure(services, job: DraftJob, exc: BaseException) -> None:
    """The placeholder becomes an error message saying what to do."""
    message = user_message(exc)
    services.messenger.update(channel=job.channel, ts=job.ts, text=message,
                              blocks=failure_blocks(job.title, job.request.topic, job.user, message))


def draft_files(result, section: str) -> list[tuple[str, str, str]]:
    """`<section>-<slug>.md` (the Markdown document) and `.bib` (exactly the cited entries), as
    (filename, content, title)."""
    stem = f"{section}-{slug(result.topic)}"
    bibtex = result.bibtex if result.bibtex.strip() else "% No sources were cited.\n"
    return [(f"{stem}.md", result.markdown(), f"{stem}.md"), (f"{stem}.bib", bibtex, f"{stem}.bib")]


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe form of a topic: 'Graph neural nets (GNNs)' -> 'graph-neural-nets-gnns'."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "draft"


class LiveDraft:
    """`on_update` for the pipeline: edits the placeholder with the text so far, at most once
    per `every` seconds and only when the text changed. Edits go out from a thread of their
    own, so a slow Slack never holds up the model; `close()` waits for an edit under way and
    stops further ones, so none can land after the final message."""

    def __init__(self, messenger, job: DraftJob, every: float, clock: Callable[[], float] = time.monotonic):
        self.messenger, self.job, self.every, self.clock = messenger, job, every, clock
        self._latest = ""
        self._shown = ""
        self._closed = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="labmate-live-draft", daemon=True)
        self._thread.start()

    def __call__(self, text: str) -> None:
        text = (text or "").strip()
        if text:
            with self._wake:
                self._latest = text
                self._wake.notify()

    def _run(self) -> None:
        next_at = 0.0
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._closed or self._latest != self._shown)
                # Never two edits closer than `every`: wait out the rest of the interval.
                self._wake.wait_for(lambda: self._closed, timeout=max(0.0, next_at - self.clock()))
                if self._closed:
                    return
                text = self._shown = self._latest
            self._edit(text)
            next_at = self.clock() + self.every  # from the end of this edit

    def _edit(self, text: str) -> None:
        job = self.job
        self.messenger.update(park=False, channel=job.channel, ts=job.ts,
                              text=placeholder_text(job.title, job.request.topic, job.user),
                              blocks=live_blocks(job.title, job.request.topic, job.user, text))

    def close(self) -> None:
        """No more edits (waits for one under way)."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._thread.join()


def _replier(services, response_url: str | None):
    def reply(text: str) -> None:
        if not response_url:
            log.error("no response_url to answer with: %s", text)
            return
        services.messenger.respond(response_url, response_type="ephemeral", replace_original=False,
                                   text=text, blocks=text_blocks(text))

    return reply
