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
    from drafting.generator import Generator
    from retrieval.library import Library
    from training.service import TrainingService

log = logging.getLogger("labmate")


def open_library(settings: "Settings", check_model: bool = True) -> "Library":
    """The retriever's library as configured (loads FAISS/BM25 files; the model loads on first use)."""
    from retrieval.embedder import SentenceTransformerEmbedder
    from retrieval.library import Library

    embedder = SentenceTransformerEmbedder(**settings.embedding.model_dump())
    return Library.open(settings.index, embedder, settings.search, check_model=check_model)


class Services:
    """What the Slack handlers need: the library (opened once), the language model (loaded on the
    first draft), the bot database, the messenger, and the worker threads that do the slow part
    of every command after its ack."""

    def __init__(self, settings: "Settings", library: "Library | None" = None,
                 generator: "Generator | None" = None, training: "TrainingService | None" = None):
        from bot.state import BotState
        from bot.train_reports import TrainReports

        self.settings = settings
        self.state: BotState = BotState(settings.storage.database)
        self.messenger: Messenger | None = None
        self.workers = ThreadPoolExecutor(max_workers=settings.slack.workers, thread_name_prefix="labmate-work")
        # Drafts run for minutes: their own threads, so searches never queue behind them.
        self.slow_workers = ThreadPoolExecutor(max_workers=settings.slack.workers, thread_name_prefix="labmate-slow")
        # One lock for the library: searches are short, and ingests must not interleave with them.
        self.library_lock = threading.RLock()
        # One draft at a time runs the model (a second one waits): a small machine has one model's room.
        self.generation_lock = threading.Lock()
        self._generator_lock = threading.Lock()
        self._library = library
        self._generator = generator
        # The training service (built on first use unless given) and the progress reports of its jobs.
        self._training = training
        self._owns_training = training is None
        self._training_lock = threading.Lock()
        self.reports = TrainReports(self)
        from bot.scheduler import Scheduler

        # Scheduled reports (cron jobs kept in the bot database) and the training reports' pass;
        # nothing runs until `start_scheduler()`.
        self.scheduler = Scheduler(self)

    def library_if_open(self) -> "Library | None":
        """The library if something opened it already (a metrics scrape must not open it)."""
        return self._library

    def library(self) -> "Library":
        """The retriever's library, opened on first use."""
        with self.library_lock:
            if self._library is None:
                self._library = open_library(self.settings)
            return self._library

    def generator(self) -> "Generator":
        """The drafting model as `[drafting]` configures it, built on first use (it loads its
        weights lazily, on its first `generate`)."""
        with self._generator_lock:
            if self._generator is None:
                from drafting.generator import make_generator

                self._generator = make_generator(self.settings.drafting)
            return self._generator

    def training(self) -> "TrainingService":
        """The training service as `[training]` configures it (this machine's job database, or
        the `labmate train serve` at `url`), built on first use."""
        with self._training_lock:
            if self._training is None:
                from training.service import make_service

                self._training = make_service(self.settings.training)
            return self._training

    def start_scheduler(self) -> None:
        """Run the scheduled reports (the weekly report as `[reports]` configures it, digests, ...)
        from now on; runs missed within `[reports] grace_seconds` run once now."""
        self.scheduler.start()

    def start_reports(self) -> None:
        """Start the scheduler, and keep the Slack messages of training jobs up to date every
        `[training] report_seconds`; `self.reports.poke()` asks for a pass now (e.g. from the
        worker's `on_change`)."""
        self.start_scheduler()
        self.reports.start()

    def warm_up(self) -> None:
        """Open the index and load the embedder before the first user waits for them; the drafting
        model loads in the background (the first start converts its GGUF, ~20 s)."""
        with self.library_lock:
            self.library().embedder.encode(["warm up"])
        threading.Thread(target=self._load_generator, name="labmate-load-model", daemon=True).start()

    def _load_generator(self) -> None:
        try:
            load = getattr(self.generator(), "load", None)  # HTTP backends have nothing to load
            if load:
                load()
        except Exception:  # the first /draft reports the same problem to its user
            log.exception("the drafting model could not be loaded")

    def submit(self, work: Callable[[], None], on_error: Callable[[BaseException], None], *,
               slow: bool = False) -> None:
        """Run `work` after the ack; any exception goes to `on_error` (the user gets an answer).
        `slow` work (drafts) runs on its own threads, so quick searches never wait behind it."""

        def run() -> None:
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 - reported to the user, then logged
                log.exception("command failed")
                on_error(exc)

        (self.slow_workers if slow else self.workers).submit(run)

    def close(self) -> None:
        """Finish the work in progress, then stop the reports and the messenger and close the
        database, index and training service."""
        self.reports.stop()
        self.scheduler.stop()
        self.workers.shutdown(wait=True, cancel_futures=False)
        self.slow_workers.shutdown(wait=True, cancel_futures=False)
        if self.messenger:
            self.messenger.stop()
        self.state.close()
        if self._library is not None:
            self._library.close()
        close_training = getattr(self._training, "close", None)
        if self._owns_training and close_training:
            close_training()
