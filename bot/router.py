"""The command language shared by Slack and the terminal.

`/papers graph neural networks year:2019-2023 author:kipf k:5` in Slack and
`labmate papers "graph neural networks" --year 2019-2023 --author kipf -k 5` run the same
`run_papers`, so both answer alike.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from core.errors import QueryError

PAPERS_HELP = (
    "*Search the lab's papers*\n"
    "`/papers <words> [year:2019-2023] [author:name] [collection:name] [k:10]`\n"
    "`/papers like:<paper id>` finds papers similar to one you know.\n"
    "`/papers subscribe <words> [daily|weekly]` posts new papers on it to this channel (weekly by default); "
    "`/papers subscriptions` lists this channel's, `/papers unsubscribe <id>` stops one.\n"
    "Mention me with a question (`@labmate what do we have on protein folding?`) to get results in the thread.\n"
    "Share a PDF, .bib or .jsonl file in a channel I'm in and I'll add it to the library."
)
_OPTION = re.compile(r"^(year|author|k|collection|like):(.*)$", re.I)


@dataclass
class PapersRequest:
    """A parsed papers search."""

    query: str = ""
    k: int | None = None
    years: tuple[int, int] | None = None
    author: str | None = None
    collection: str | None = None
    like: str | None = None
    help: bool = False
    options: dict = field(default_factory=dict)


@dataclass
class SubscriptionRequest:
    """`/papers subscribe <query> [daily|weekly]`, `/papers subscriptions`, `/papers unsubscribe <id>`."""

    action: str  # "subscribe", "list" or "unsubscribe"
    query: str = ""
    frequency: str = "weekly"
    id: int | None = None


SUBSCRIBE_USAGE = "`/papers subscribe <words> [daily|weekly]`, e.g. `/papers subscribe protein folding daily`"
FREQUENCIES = ("daily", "weekly")


def parse_subscription(text: str) -> SubscriptionRequest | None:
    """The subscription forms of `/papers` (their first word is `subscribe`, `subscriptions` or
    `unsubscribe`); None for anything else, which is a search. The query of a subscription is
    checked as a search would be (filters such as `author:` apply to the digest too)."""
    words = (text or "").split()
    first = words[0].lower() if words else ""
    if first == "subscriptions":
        if len(words) > 1:
            raise QueryError("`/papers subscriptions` takes nothing after it; it lists this channel's subscriptions.")
        return SubscriptionRequest("list")
    if first == "unsubscribe":
        ident = words[1].lstrip("#") if len(words) == 2 else ""
        if not ident.isdigit():
            raise QueryError("Write `/papers unsubscribe <id>` with the subscription's number; "
                             "`/papers subscriptions` lists them.")
        return SubscriptionRequest("unsubscribe", id=int(ident))
    if first != "subscribe":
        return None
    rest = text.strip()[len(words[0]):].strip()
    frequency = "weekly"
    if len(words) > 1 and words[-1].lower() in FREQUENCIES:
        frequency = words[-1].lower()
        rest = rest[: len(rest) - len(words[-1])].strip()
    if not rest or rest.lower() in ("help", "?"):
        raise QueryError(f"Add what to follow: {SUBSCRIBE_USAGE}.")
    request = parse_papers(rest)
    if request.help:
        raise QueryError(f"Add what to follow: {SUBSCRIBE_USAGE}.")
    if request.like:
        raise QueryError(f"A subscription follows words, not `like:`; {SUBSCRIBE_USAGE}.")
    return SubscriptionRequest("subscribe", query=rest, frequency=frequency)


def parse_papers(text: str) -> PapersRequest:
    """Parse the text after `/papers` (or after an @-mention)."""
    from retrieval.search import parse_years

    text = (text or "").strip()
    if text.lower() in ("", "help", "-h", "--help", "?"):
        return PapersRequest(help=True)
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    request, words = PapersRequest(), []
    for token in tokens:
        match = _OPTION.match(token)
        if not match or not match.group(2):
            words.append(token)
            continue
        name, value = match.group(1).lower(), match.group(2)
        if name == "year":
            request.years = parse_years(value)
        elif name == "k":
            if not value.isdigit() or not 1 <= int(value) <= 50:
                raise QueryError(f"k:{value} is not a number of results from 1 to 50; try k:10.")
            request.k = int(value)
        else:
            setattr(request, name, value)
    request.query = " ".join(words)
    if not request.query and not request.like:
        raise QueryError("Add some words to search for, e.g. `/papers protein folding year:2020-`.")
    return request


def run_papers(library, request: PapersRequest):
    """Search (or more-like-this) for a parsed request; returns the hits, best first."""
    from retrieval.search import Filters, more_like, search

    filters = Filters(request.years, request.author, request.collection)
    if request.like:
        return more_like(library, request.like, request.k, filters)
    return search(library, request.query, request.k, filters)


def describe(request: PapersRequest) -> str:
    """A short human description of what was searched, for result headers."""
    parts = [f"“{request.query}”" if request.query else f"papers like {request.like}"]
    if request.years:
        low, high = request.years
        parts.append(f"{low if low else '…'}–{high if high < 9999 else '…'}")
    if request.author:
        parts.append(f"author {request.author}")
    if request.collection:
        parts.append(f"collection {request.collection}")
    return " · ".join(parts)
