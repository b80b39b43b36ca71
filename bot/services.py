"""Wiring: settings in, ready-to-use services out. No work happens at import."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.slack_client import Messenger
    from bot.state import BotState
    from retrieval.library import Library

log = logging.getLogger("labmate")


def open_library(settings: "Settings", check_model: bool = True) -> "Library":
    """The retriever's library as configured (loads FAISS/BM25 files; the model loads on first use)."""
    from retrieval.embedder import SentenceTransformerEmbedder
    from retrieval.library import Library

    embedder = SentenceTransformerEmbedder(**settings.embedding.model_dump())
    return Library.open(settings.index, embedder, settings.search, check_model=check_model)


class Services:
    """What the Slack handlers need: the library (opened once), the bot database, the messenger
    and the worker threads that do the slow part of every command after its ack."""

    def __init__(self, settings: "Settings", library: "Library | None" = None):
        from bot.state import BotState

        self.settings = settings
        self.state: BotState = BotState(settings.storage.database)
        self.messenger: Messenger | None = None
        self.workers = ThreadPoolExecutor(max_workers=settings.slack.workers, thread_name_prefix="labmate-work")
        # One lock for the library: searches are short, and ingests must not interleave with them.
        self.library_lock = threading.RLock()
        self._library = library

    def library(self) -> "Library":
        with self.library_lock:
            if self._library is None:
                self._library = open_library(self.settings)
            return self._library

    def warm_up(self) -> None:
        """Open the index and load the model before the first user waits for it."""
        with self.library_lock:
            self.library().embedder.encode(["warm up"])

    def submit(self, work: Callable[[], None], on_error: Callable[[BaseException], None]) -> None:
        """Run `work` after the ack; any exception goes to `on_error` (the user gets an answer)."""

        def run() -> None:
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 - reported to the user, then logged
                log.exception("command failed")
                on_error(exc)

        self.workers.submit(run)

    def close(self) -> None:
        self.workers.shutdown(wait=True, cancel_futures=False)
        if self.messenger:
            self.messenger.stop()
        self.state.close()
        if self._library is not None:
            self._library.close()
