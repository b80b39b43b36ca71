"""Paper digests: `/papers subscribe <query> [daily|weekly]` posts, on that schedule, the papers
added to the library since the last digest that match the query.

A subscription (a row of the bot database's `subscriptions` table) has a watermark: the
`added_at` of the newest paper in the library when it was last digested (at first, when the
subscription was made), so each digest holds only papers added after it. Its schedule is the
persistent scheduler job `digest:<id>` on `[reports] daily` or `[reports] weekly`.

Which new papers make a digest: the hybrid search (`retrieval.search.search`) restricted to the
papers added after the watermark (`Filters.added_after`, plus any `year:`/`author:`/`collection:`
of the query) ranks them, and a paper is kept when its best passage's dense cosine similarity to
the query is at least `MIN_SIMILARITY`, at most `k` of them (`k:` in the query, else `[search]
k`). The hybrid score itself cannot be the cut: it is min-max normalized over each search's own
candidates, so it is relative (the best of a few unrelated new papers scores high, a single
candidate scores 0), while the cosine similarity of the all-MiniLM embeddings is absolute
(related abstracts score about 0.35-0.8 against a short query, unrelated ones below 0.3).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone as dt_timezone

from bot.blocks import split_messages
from bot.digest_blocks import digest_blocks, digest_text, empty_digest_blocks, empty_digest_text
from bot.digest_blocks import format_time, subscriptions_text
from bot.router import SubscriptionRequest, parse_papers
from bot.scheduler import register_handler, zone
from core.errors import NotFoundError

log = logging.getLogger("labmate.digests")

KIND = "digest"
MIN_SIMILARITY = 0.35


# -- subscriptions -------------------------------------------------------------------------------

def handle(services, request: SubscriptionRequest, channel: str, user: str | None) -> str:
    """Carry out a parsed subscription form of `/papers`; returns the (ephemeral) answer."""
    if request.action == "subscribe":
        return subscribe(services, channel, user, request.query, request.frequency)
    if request.action == "unsubscribe":
        return unsubscribe(services, channel, request.id)
    subs = services.state.subscriptions(channel)
    return subscriptions_text(subs, {sub.id: next_run(services, sub.id, sub.channel) for sub in subs})


def subscribe(services, channel: str, user: str | None, query: str, frequency: str) -> str:
    """Store the subscription (watermark: the newest paper now) and schedule its digests."""
    with services.library_lock:
        library = services.library()
        library.refresh()
        watermark = library.store.newest_added()
    sub = services.state.add_subscription(channel, query, frequency, user, watermark)
    try:
        schedule(services, sub)
    except BaseException:
        services.state.remove_subscription(sub.id)
        raise
    when = next_run(services, sub.id, sub.channel)
    first = f" The first comes {format_time(when)}." if when else ""
    return (f"Subscribed this channel to new papers on “{query}”, {frequency} (subscription #{sub.id}).{first} "
            f"`/papers unsubscribe {sub.id}` stops it.")


def unsubscribe(services, channel: str, sub_id: int) -> str:
    """Remove one of this channel's subscriptions and its scheduled job."""
    sub = services.state.subscription(sub_id)
    if sub is None or sub.channel != channel:
        raise NotFoundError(f"This channel has no paper digest #{sub_id}; `/papers subscriptions` lists its digests.")
    services.scheduler.remove(KIND, str(sub_id))
    services.state.remove_subscription(sub_id)
    return f"Unsubscribed: no more digests of new papers on “{sub.query}” (#{sub_id}) in this channel."


def schedule(services, sub) -> None:
    """(Re)schedule a subscription's job on the cron `[reports]` sets for its frequency."""
    reports = services.settings.reports
    cron = reports.daily if sub.frequency == "daily" else reports.weekly
    services.scheduler.add(KIND, str(sub.id), cron, timezone=reports.timezone_of(sub.channel))


def sync(services) -> None:
    """Schedule every stored subscription as `[reports]` configures it now (a changed `daily` or
    `weekly` cron replaces the stored one; an unchanged one is left as it is)."""
    for sub in services.state.subscriptions():
        schedule(services, sub)


def next_run(services, sub_id: int, channel: str | None = None) -> datetime | None:
    """When the subscription's next digest is due, in the channel's time zone; None if unscheduled."""
    job = services.scheduler.job(KIND, str(sub_id))
    if job is None:
        return None
    tz = zone(services.settings.reports.timezone_of(channel))
    when = job.trigger.get_next_fire_time(None, datetime.now(tz))
    return when.astimezone(tz) if when else None


# -- the digest ------------------------------------------------------------------------------------

def new_papers(library, query: str, watermark: float, k: int | None = None) -> tuple[list, float]:
    """The papers added after `watermark` that match `query` (a `/papers` search text), best
    first, and the new watermark (the newest paper's `added_at` now). See the module's doc."""
    from retrieval.search import Filters, best_similarity, search

    request = parse_papers(query)
    library.refresh()
    newest = library.store.newest_added()
    if newest <= watermark:
        return [], watermark
    filters = Filters(request.years, request.author, request.collection, added_after=watermark)
    hits = search(library, request.query, library.search_settings.candidates, filters)
    if not hits:
        return [], newest
    best = best_similarity(library, request.query, [h.id for h in hits], newest)
    kept = [h for h in hits if best.get(h.id, -1.0) >= MIN_SIMILARITY]
    return kept[: request.k or library.search_settings.k], newest


def run_digest(services, sub) -> bool:
    """Post a subscription's digest to its channel and advance its watermark; returns whether
    anything was posted (nothing new and `[reports] skip_empty` posts nothing)."""
    reports = services.settings.reports
    with services.library_lock:
        hits, newest = new_papers(services.library(), sub.query, sub.watermark)
    since = datetime.fromtimestamp(max(sub.watermark, sub.created_at), dt_timezone.utc) \
        .astimezone(zone(reports.timezone_of(sub.channel)))
    if hits:
        blocks = digest_blocks(sub.id, sub.query, sub.frequency, since, hits)
        fallback = digest_text(sub.query, since, hits)
        for part in split_messages(blocks):
            services.messenger.post(channel=sub.channel, text=fallback, blocks=part)
    elif not reports.skip_empty:
        services.messenger.post(channel=sub.channel, text=empty_digest_text(sub.query, since),
                                blocks=empty_digest_blocks(sub.id, sub.query, sub.frequency, since))
    services.state.advance_watermark(sub.id, newest)
    log.info("digest #%d (%s) for %s: %d new paper(s)", sub.id, sub.query, sub.channel, len(hits))
    return bool(hits) or not reports.skip_empty


def digest_handler(services, key: str, scheduled_for: datetime) -> None:
    """The scheduler's handler of kind "digest" (key: the subscription id)."""
    sub = services.state.subscription(int(key)) if key.isdigit() else None
    if sub is None:
        log.warning("digest %s (scheduled for %s) has no subscription any more; unscheduled", key, scheduled_for)
        services.scheduler.remove(KIND, key)
        return
    run_digest(services, sub)


register_handler(KIND, digest_handler)
