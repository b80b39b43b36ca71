"""Files shared in a channel the bot is in (or sent to it directly) are downloaded and indexed."""

from __future__ import annotations

import logging
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from bot.blocks import text_blocks
from bot.errors import user_message
from core.errors import UserError
from retrieval.loaders import SUPPORTED

log = logging.getLogger("labmate.files")


def register(app, services) -> None:
    @app.event({"type": "message", "subtype": "file_share"})
    def on_file_share(event):
        channel, thread = event["channel"], event.get("thread_ts") or event["ts"]
        direct = event.get("channel_type") == "im"

        def reply(text: str) -> None:
            services.messenger.post(channel=channel, thread_ts=thread, text=text, blocks=text_blocks(text))

        files = [f for f in event.get("files", []) if direct or Path(f.get("name", "")).suffix.lower() in SUPPORTED]
        if not files:
            return  # images and other files shared in channels are not for us
        if not services.settings.access.files.allows(event.get("user"), channel):
            reply("Sorry, I'm not set up to index files from you here. Ask whoever runs labmate.")
            return
        services.submit(lambda: reply(_ingest(services, files)), lambda exc: reply(user_message(exc)))

    @app.event("message")
    def on_other_message(event):
        """Plain messages need no answer (mentions arrive as app_mention)."""


def _ingest(services, files: list[dict]) -> str:
    from retrieval.ingest import add_paths

    limit = services.settings.slack.max_file_mb
    # Kept under the index folder: the library's sources stay readable, and sharing the same
    # Slack file again is recognized as unchanged.
    uploads = Path(services.settings.index.dir) / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    lines = []
    paths = []
    for info in files:
        name = _safe_name(info.get("name") or info.get("id", "file"))
        if Path(name).suffix.lower() not in SUPPORTED:
            lines.append(f"• {name}: I can index PDF, BibTeX (.bib), JSONL/JSON and CSV files, not this one.")
        elif (info.get("size") or 0) > limit * 1e6:
            lines.append(f"• {name}: {info['size'] / 1e6:.1f} MB is over the {limit:g} MB limit; "
                         "ask whoever runs labmate to index it from the server.")
        else:
            target = uploads / f"{_safe_name(info.get('id', 'F'))}-{name}"
            paths.append(_download(info, services.messenger.client.token, target, limit))
    if paths:
        with services.library_lock:
            report = add_paths(services.library(), paths, services.settings.slack.files_collection,
                               progress=False)
        lines.insert(0, _summary(report))
    return "\n".join(lines)


def _summary(report) -> str:
    text = (f":books: Added {len(report.added)} paper(s), merged {len(report.merged)} with ones we had, "
            f"{len(report.unchanged)} already in the library")
    if report.problems:
        text += f"; skipped {len(report.problems)}:\n" + "\n".join(
            f"• {Path(p.file).name}: {p.where + ': ' if p.where else ''}{p.reason}" for p in report.problems[:10])
    return text + ("." if not report.problems else "")


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", Path(name).name)[:120] or "file"


def _download(info: dict, token: str, target: Path, limit_mb: float, attempts: int = 3) -> Path:
    """Fetch a file with the bot token (Slack requires it for url_private), retrying network errors."""
    url = info.get("url_private_download") or info.get("url_private")
    if not url:
        raise UserError(f"Slack gave no download link for {info.get('name')}; share the file again.")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                data = response.read(int(limit_mb * 1e6) + 1)
            break
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == attempts:
                raise UserError(f"Could not download {info.get('name')} from Slack (HTTP {exc.code}); "
                                "check that the bot has the files:read scope.") from None
        except OSError:
            if attempt == attempts:
                raise UserError(f"Could not download {info.get('name')}: Slack did not answer. Try again.") from None
        time.sleep(attempt)
    if len(data) > limit_mb * 1e6:
        raise UserError(f"{info.get('name')} is over the {limit_mb:g} MB limit for shared files.")
    target.write_bytes(data)
    return target
