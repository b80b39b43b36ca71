"""A `Generator` running a local GGUF model in-process with llama-cpp-python (optional extra).

llama-cpp-python is imported on the first `generate`, so configuring this backend without it
installed fails with a message saying what to install, not at import time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Sequence

from core.errors import ConfigError
from drafting.backends.locate import locate
from drafting.backends.openai_compat import StopWatcher, delta_content
from drafting.generator import Generation, GenerationError, Message, OnText, PrefixAsked


class LlamaCppGenerator:
    """A chat model in a local .gguf file, streamed piece by piece through llama.cpp."""

    def __init__(self, model: str, temperature: float = 0.0, n_ctx: int = 4096, threads: int | None = None):
        self.model, self.temperature, self.n_ctx, self.threads = model, temperature, n_ctx, threads
        self.name = f"llamacpp:{Path(model).name}"
        self._llama = None
        # One llama.cpp context holds one conversation's KV cache: it is not thread-safe.
        self._lock = threading.Lock()

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int, stop: Sequence[str] = (),
                 on_text: OnText | None = None, prefix: str = "") -> Generation:
        """Stream one reply; `on_text` sees each new piece as it is written, never text past a stop."""
        with self._lock:
            llama = self._load()
            start = time.monotonic()
            asked = PrefixAsked(prefix, on_text)
            watcher = StopWatcher(stop, asked.feed)
            try:
                chunks = llama.create_chat_completion(
                    messages=asked.messages(messages), max_tokens=max_new_tokens,
                    temperature=self.temperature, stop=watcher.stop or None, stream=True)
                _feed(chunks, watcher)
            except (ValueError, RuntimeError) as exc:  # e.g. the prompt exceeds the context window
                raise GenerationError(f"llama.cpp could not write with {self.model!r} ({exc}). Shorten the "
                                      "request or choose a model with a longer context.") from None
            text = asked.cut(watcher.finish())
            asked.flush()
            return Generation(text, watcher.pieces, time.monotonic() - start)

    def _load(self):
        """The loaded model; the file is checked before llama.cpp is imported, so a wrong model
        setting is reported even where llama-cpp-python is missing."""
        if self._llama is not None:
            return self._llama
        files = locate(self.model)
        if files.gguf_path is None:
            raise ConfigError(
                f"[drafting] model {self.model!r} is a Hugging Face model folder, but the llamacpp backend "
                "needs a .gguf file: point model at a .gguf file (or \"default\"), or set "
                "[drafting] backend = \"transformers\" to use the folder.")
        llama_class = _import_llama()
        try:
            self._llama = llama_class(model_path=str(files.gguf_path), n_ctx=self.n_ctx, n_threads=self.threads,
                                      verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConfigError(f"llama.cpp could not load {files.gguf_path} ({exc}): check that it is a complete "
                              "GGUF file this llama-cpp-python version supports.") from None
        return self._llama


def _feed(chunks, watcher: StopWatcher) -> None:
    """Pass streamed chunks (shaped like OpenAI's) to `watcher` until the text holds a stop."""
    try:
        for chunk in chunks:
            if watcher.feed(delta_content(chunk)):
                break
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:  # ends generation inside llama.cpp on an early stop
            close()


def _import_llama():
    try:
        from llama_cpp import Llama
    except (ImportError, OSError) as exc:  # OSError: the package is there but its native library is not
        raise ConfigError(
            f"The llamacpp drafting backend needs llama-cpp-python ({exc}): run `pip install llama-cpp-python` "
            "(or `pip install -e \".[llamacpp]\"`), or set [drafting] backend = \"transformers\" or \"openai\" "
            "in config.toml.") from None
    return Llama
