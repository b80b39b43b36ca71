"""`/papers` and its "BibTeX" and "More like this" buttons."""

from __future__ import annotations

from bot.blocks import bibtex_blocks, results_blocks, results_text, split_messages, text_blocks
from bot.errors import user_message
from bot.router import PAPERS_HELP, describe, parse_papers, parse_subscription, run_papers

REFUSED = "Sorry, /papers is not enabled for you in this channel. Ask whoever runs labmate to add you."


def register(app, services) -> None:
    @app.command("/papers")
    def papers_command(ack, command):
        ack()  # within Slack's 3 s, before any parsing or search
        user, channel, url = command.get("user_id"), command.get("channel_id"), command["response_url"]
        reply = _replier(services, url)
        if not services.settings.access.papers.allows(user, channel):
            reply(REFUSED)
            return
        services.submit(lambda: _papers(services, command.get("text", ""), url, channel, user),
                        lambda exc: reply(user_message(exc)))

    @app.action("papers_bibtex")
    def bibtex_button(ack, body, action):
        ack()
        url = body.get("response_url")
        services.submit(lambda: _send_bibtex(services, action["value"], url),
                        lambda exc: _replier(services, url)(user_message(exc)))

    @app.action("papers_more_like")
    def more_like_button(ack, body, action):
        ack()
        url = body.get("response_url")
        text = f"like:{action['value']}"
        services.submit(lambda: _search_and_respond(services, text, url, in_channel=False),
                        lambda exc: _replier(services, url)(user_message(exc)))


def _replier(services, response_url):
    def reply(text: str) -> None:
        services.messenger.respond(response_url, response_type="ephemeral", replace_original=False,
                                   text=text, blocks=text_blocks(text))

    return reply


def papers_messages(services, text: str) -> tuple[bool, list[tuple[str, list[dict]]]]:
    """Run a papers request; returns (is_help, messages as (fallback text, blocks)) within
    Slack's limits. /papers and @-mentions both answer with this."""
    request = parse_papers(text)
    if request.help:
        return True, [(PAPERS_HELP, text_blocks(PAPERS_HELP))]
    with services.library_lock:
        hits = run_papers(services.library(), request)
    description = describe(request)
    fallback = results_text(description, hits)
    topic = None if request.like else request.query  # the "Draft related work from these" button's
    blocks = results_blocks(description, hits, draft_topic=topic)
    return False, [(fallback, part) for part in split_messages(blocks)]


def _papers(services, text: str, response_url: str, channel: str | None, user: str | None) -> None:
    """A search, or one of the subscription forms (`subscribe`, `subscriptions`, `unsubscribe`)."""
    request = parse_subscription(text)
    if request is None:
        _search_and_respond(services, text, response_url)
        return
    from bot.digests import handle

    _replier(services, response_url)(handle(services, request, channel, user))


def _search_and_respond(services, text: str, response_url: str, in_channel: bool = True) -> None:
    is_help, messages = papers_messages(services, text)
    visibility = "in_channel" if in_channel and not is_help else "ephemeral"
    for fallback, blocks in messages:
        services.messenger.respond(response_url, response_type=visibility, replace_original=False,
                                   text=fallback, blocks=blocks)


def _send_bibtex(services, paper_id: str, response_url: str) -> None:
    from retrieval.cite import cite

    with services.library_lock:
        entry = cite(services.library().store, [paper_id])
    services.messenger.respond(response_url, response_type="ephemeral", replace_original=False,
                               text=entry, blocks=bibtex_blocks(entry))
