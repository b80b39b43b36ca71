"""The `Generator` protocol: what the drafting pipeline needs from a language model.

One implementation per module under `drafting/backends/`; `make_generator` picks the one the
config names. Implementations load their model lazily, on the first `generate`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence

from core.errors import UserError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
OnText = Callable[[str], None]


class GenerationError(UserError):
    """The model could not write (server down, model failed); the message says what to do."""


@dataclass
class Generation:
    """What one call produced: the text (cut before any stop string) and its cost."""

    text: str
    tokens: int
    seconds: float


class Generator(Protocol):
    """A chat model. `on_text` receives each new piece of text as it is written (streaming);
    generation ends at `max_new_tokens` or when the text contains one of `stop`.

    `prefix` is how the answer begins ("Smith et al. found that"): the model continues it. Text
    returned and streamed is the continuation only. Backends that cannot prefill an answer ask
    for the prefix in the prompt and remove it from what the model repeats (`PrefixAsked`).
    """

    name: str

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int, stop: Sequence[str] = (),
                 on_text: OnText | None = None, prefix: str = "") -> Generation: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first stop string, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class PrefixAsked:
    """For backends without answer prefill: the prefix becomes an instruction, and the part of
    the answer that repeats it is held back from `on_text` and cut from the text."""

    def __init__(self, prefix: str, on_text: OnText | None):
        self.prefix, self.on_text = prefix.strip(), on_text
        self.seen = ""
        self.decided = not self.prefix

    def messages(self, messages: Sequence[Message]) -> list[Message]:
        out = [dict(m) for m in messages]
        if self.prefix and out:
            out[-1]["content"] += f'\nBegin the sentence with "{self.prefix}".'
        return out

    def feed(self, piece: str) -> None:
        """`on_text` for the backend: passes pieces on once the repeated prefix is dropped."""
        if self.decided:
            if self.on_text:
                self.on_text(piece)
            return
        self.seen += piece
        stripped = self.seen.lstrip()
        if len(stripped) < len(self.prefix) and self.prefix.lower().startswith(stripped.lower()):
            return  # could still be the prefix
        self.flush()

    def flush(self) -> None:
        """Pass on what was held back (at the end of a reply that was all prefix-like)."""
        if not self.decided:
            self.decided = True
            rest = self.cut(self.seen)
            if rest and self.on_text:
                self.on_text(rest)

    def cut(self, text: str) -> str:
        """`text` without a leading repetition of the prefix."""
        stripped = text.lstrip()
        if self.prefix and stripped.lower().startswith(self.prefix.lower()):
            return stripped[len(self.prefix):]
        return text


def make_generator(settings, env: Mapping[str, str] | None = None) -> Generator:
    """The backend `settings.backend` names, configured from DraftingSettings."""
    env = os.environ if env is None else env
    if settings.backend == "openai":
        from drafting.backends.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator(settings.url, settings.model, api_key=env.get(settings.api_key_env),
                                     temperature=settings.temperature, timeout=settings.timeout,
                                     key_env=settings.api_key_env)
    if settings.backend == "llamacpp":
        from drafting.backends.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(settings.model, temperature=settings.temperature, threads=settings.threads or None)
    from drafting.backends.transformers_backend import TransformersGenerator

    return TransformersGenerator(settings.model, cache_dir=settings.cache_dir, device=settings.device,
                                 temperature=settings.temperature, threads=settings.threads)
