"""`labmate serve` without Slack tokens: the same bot, against a local workspace on 127.0.0.1.

The workspace is `bot.devslack.FakeSlack` (the fake the tests use) with its browser page. The bot
runs exactly as with real Slack in HTTP mode: fresh random bot token and signing secret, every
request signed, every answer a Web API call over HTTP; only SLACK_API_URL points here.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Mapping

log = logging.getLogger("labmate.local")
MANIFEST = Path(__file__).resolve().parents[1] / "slack-manifest.yml"
NOTICE = (
    "*This is a local workspace* on your computer; nothing leaves it. Try `/papers help`, "
    "`/papers <words>`, `/draft related-work <topic>`, `/train help`, or mention `@labmate` with a question.\n"
    "{library}\n"
    "To add the lab's own papers, drop PDF, .bib, .jsonl or .csv files on this page, or run "
    "`labmate index add <files or folders>`. To use a real Slack workspace instead, see README.md, "
    "\"Connect to Slack\"."
)

INDEXING = "Checking the library (a first start indexes the demo papers: about a minute)…"


def start_workspace(port: int, env: Mapping[str, str]):
    """A FakeSlack on 127.0.0.1:`port` (0 = any free port), serving, and the environment the bot
    runs with: `env` plus a fresh random bot token and signing secret, and SLACK_API_URL pointing
    at the workspace. Returns (workspace, environment)."""
    from bot.devslack import FakeSlack

    fake = FakeSlack(port=port, bot_token=f"xoxb-local-{secrets.token_hex(12)}").start()
    return fake, {**env, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": secrets.token_hex(16),
                  "SLACK_API_URL": fake.url}


def channel_ids(names: list[str]) -> list[tuple[str, str]]:
    """(id, name) per channel name: `general` -> `C0GENERAL` (stable across restarts, so
    subscriptions and reports kept in the database still point at the same channel)."""
    return [("C0" + (re.sub(r"[^A-Z0-9]", "", name.upper()) or "X")[:9], name.lstrip("#")) for name in names]


def manifest_commands(path: Path = MANIFEST) -> list[dict[str, str]]:
    """The slash commands the app declares in its manifest (command, description, usage_hint)."""
    import yaml

    try:
        manifest = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:  # the page then accepts any command
        log.warning("could not read the slash commands from %s: %s", path, exc)
        return []
    commands = ((manifest or {}).get("features") or {}).get("slash_commands") or []
    return [{k: str(c.get(k) or "") for k in ("command", "description", "usage_hint")} for c in commands]


def index_demo(settings, services) -> str:
    """On a first start (empty index), index `[workspace] demo_sources`; returns a line for the
    page's notice saying what the library holds."""
    from retrieval.ingest import add_paths

    workspace = settings.workspace
    with services.library_lock:
        library = services.library()
        papers = library.store.counts()["papers"]
        if papers == 0 and workspace.demo_sources:
            sources = [p for p in workspace.demo_sources if p.exists()]
            if not sources:
                return "The library is empty (no demo papers found at " \
                       f"{', '.join(map(str, workspace.demo_sources))})."
            log.info("empty index: adding the demo library from %s", ", ".join(map(str, sources)))
            report = add_paths(library, sources, workspace.demo_collection, progress=False)
            papers = library.store.counts()["papers"]
            return (f"The library holds {papers} demo papers ({len(report.added)} just indexed from "
                    f"`{'`, `'.join(p.name for p in sources)}`: SciFact abstracts and the *Dive into Deep "
                    f"Learning* bibliography; licences in `demo/README.md`), in the collection "
                    f"`{workspace.demo_collection}`.")
    return f"The library holds {papers} paper{'s' if papers != 1 else ''}."


def notice(library_line: str) -> str:
    """The banner the page shows above the messages."""
    return NOTICE.format(library=library_line)
