"""`/train` (start, status, cancel, resume, help) and the Cancel button of a job's progress message.

`/train start` queues a job on the training service and posts its progress message in the
channel; the bot database remembers (job, channel, message) so that `TrainReports` keeps the
message up to date and posts the final report in its thread, even after a restart. Every
other answer is ephemeral, and every error reaches the user through `user_message`.
"""

from __future__ import annotations

import logging
import re

from bot.blocks import escape, text_blocks
from bot.errors import user_message
from bot.train_blocks import (CANCEL_ACTION, job_detail_blocks, progress_blocks, progress_text, status_blocks,
                              train_help)
from bot.train_reports import fingerprint
from core.errors import QueryError, UserError

log = logging.getLogger("labmate.train")

REFUSED = "Sorry, /train is not enabled for you in this channel. Ask whoever runs labmate to add you."
CANNOT_POST = ("I couldn't post job #{id}'s progress in this channel, so I cancelled it. If I'm not in the "
               "channel, invite me with `/invite @labmate`, then start it again.")
HELP_WORDS = ("", "help", "-h", "--help", "?")
PASTED = "The pasted spec"
SMART_QUOTES = {0x201C: '"', 0x201D: '"', 0x2018: "'", 0x2019: "'"}


def register(app, services) -> None:
    """`/train` and the `train_cancel` button."""

    @app.command("/train")
    def train_command(ack, command):
        ack()  # within Slack's 3 s, before any parsing or call to the training service
        user, channel = command.get("user_id"), command.get("channel_id")
        reply = replier(services, command.get("response_url"))
        if not services.settings.access.train.allows(user, channel):
            reply(REFUSED)
            return
        services.submit(lambda: run_train(services, command.get("text", ""), user, channel, reply),
                        lambda exc: reply(user_message(exc)))

    @app.action(CANCEL_ACTION)
    def cancel_button(ack, body, action):
        ack()
        user = (body.get("user") or {}).get("id")
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        reply = replier(services, body.get("response_url"))
        if not services.settings.access.train.allows(user, channel):
            reply(REFUSED)
            return
        services.submit(lambda: cancel_job(services, parse_id(action.get("value") or "", "cancel"), reply),
                        lambda exc: reply(user_message(exc)))


def run_train(services, text: str, user: str, channel: str, reply) -> None:
    """Do what `/train <text>` asks and answer (UserErrors propagate to the caller's `on_error`)."""
    sub, rest = split_command(text)
    if sub in HELP_WORDS:
        reply(train_help(presets(services)))
    elif sub == "start":
        start_job(services, rest, user, channel, reply)
    elif sub == "status":
        show_status(services, rest, reply)
    elif sub == "cancel":
        cancel_job(services, parse_id(rest, "cancel"), reply)
    elif sub == "resume":
        resume_job(services, parse_id(rest, "resume"), channel, reply)
    else:
        raise QueryError(f"Unknown subcommand '{sub}': use `/train start`, `status`, `cancel`, `resume` "
                         "or `help`.")


def split_command(text: str) -> tuple[str, str]:
    """('start', 'the rest, newlines kept') from the command's text."""
    match = re.match(r"\s*(\S*)\s*(.*)", text or "", re.S)
    return match.group(1).lower(), match.group(2).strip()


def parse_id(text: str, sub: str) -> int:
    """The job number in '3' or '#3'; a QueryError that says what to type otherwise."""
    match = re.fullmatch(r"#?(\d{1,12})", (text or "").strip())
    if not match:
        raise QueryError(f"`/train {sub}` needs a job number, e.g. `/train {sub} 3` (`/train status` lists them).")
    return int(match.group(1))


def clean_spec(text: str) -> str:
    """A spec as pasted in Slack made TOML again: entities decoded, smart quotes straightened,
    a surrounding ``` code fence (optionally ```toml) removed."""
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").translate(SMART_QUOTES).strip()
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        text = re.sub(r"^toml[ \t]*(?=\n)", "", text[3:-3].strip("\n"), flags=re.I)
    return text.strip()


def presets(services) -> list[str]:
    """The preset names (none when the training service cannot be reached; help still answers)."""
    try:
        return services.training().presets()
    except Exception:
        log.exception("could not list the training presets")
        return []


def start_job(services, rest: str, user: str, channel: str, reply) -> None:
    """Queue a preset (one word) or a pasted spec, then post its progress message."""
    spec = clean_spec(rest)
    if not spec:
        names = ", ".join(f"`{name}`" for name in presets(services)) or "none yet"
        raise QueryError(f"Say what to train: `/train start <preset>` (presets: {names}), or `/train start` "
                         "followed by a TOML job spec on the next lines.")
    origin = {"channel": channel, "user": user}
    service = services.training()
    if re.fullmatch(r"[^\s=\[\]\"']+", spec):
        job = service.submit_preset(spec, origin=origin)
    else:
        job = service.submit(spec, source=PASTED, origin=origin)
    announce(services, job, channel, reply)


def announce(services, job, channel: str, reply) -> None:
    """Post the job's progress message in the channel and track it; if the channel refuses it,
    cancel the job (nobody would see its reports) and tell the user to invite the bot."""
    text, blocks = progress_text(job), progress_blocks(job)
    posted = services.messenger.post(park=False, channel=channel, text=text, blocks=blocks)
    if not posted:
        try:
            services.training().cancel(job.id)
        except UserError:  # it has ended meanwhile
            pass
        reply(CANNOT_POST.format(id=job.id))
        return
    services.state.track_job(job.id, posted.get("channel") or channel, posted["ts"], fingerprint(text, blocks))
    services.reports.poke()


def show_status(services, rest: str, reply) -> None:
    """The active and recent jobs, or one job in detail."""
    service = services.training()
    if rest:
        job = service.get(parse_id(rest, "status"))
        reply(progress_text(job), job_detail_blocks(job))
        return
    active = service.list(active=True, limit=20)
    recent = [job for job in service.list(limit=30) if job.finished][:10]
    reply(f"{len(active)} active and {len(recent)} recent training job(s).", status_blocks(active, recent))


def cancel_job(services, job_id: int, reply) -> None:
    """Cancel a queued job at once, or ask a running one to stop; a finished one raises a UserError."""
    job = services.training().cancel(job_id)
    if job.state == "cancelled":
        reply(f"Cancelled job #{job.id} ({escape(job.name)}) before it started.")
    else:
        reply(f"Cancelling job #{job.id} ({escape(job.name)})… it stops after saving a checkpoint.")
    services.reports.poke()


def resume_job(services, job_id: int, channel: str, reply) -> None:
    """Queue a failed or cancelled job again; its progress shows in its message (or a new one here)."""
    job = services.training().resume(job_id)
    if services.state.tracked_job(job.id) is None:
        announce(services, job, channel, reply)
        return
    services.state.job_reported(job.id, done=False)
    reply(f"Job #{job.id} ({escape(job.name)}) is queued again; it continues from its last checkpoint.")
    services.reports.poke()


def replier(services, response_url: str | None):
    """`reply(text, blocks=None)`: an ephemeral answer through the response_url."""

    def reply(text: str, blocks: list[dict] | None = None) -> None:
        if not response_url:
            log.error("no response_url to answer with: %s", text)
            return
        services.messenger.respond(response_url, response_type="ephemeral", replace_original=False,
                                   text=text, blocks=blocks or text_blocks(text))

    return reply
