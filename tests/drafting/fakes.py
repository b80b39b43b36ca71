"""A Generator for tests that is real code, not a mock: it answers each prompt with text a test
chooses and streams it word by word, honouring `stop` and `max_new_tokens` like a model."""

from __future__ import annotations

import re

from drafting.generator import Generation, cut_at_stop


class ScriptedGenerator:
    """Replies with `reply(prompt)` (a function of the user message) or the next scripted string."""

    name = "scripted"

    def __init__(self, reply):
        self.reply = reply
        self.prompts: list[str] = []

    def generate(self, messages, *, max_new_tokens, stop=(), on_text=None, prefix=""):
        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        text = self.reply(prompt) if callable(self.reply) else self.reply[(len(self.prompts) - 1) % len(self.reply)]
        text = continuation(text, prefix)
        text, _ = cut_at_stop(text, stop)
        pieces = re.findall(r"\S+\s*", text)[:max_new_tokens]  # one "token" per word
        for piece in pieces:
            if on_text:
                on_text(piece)
        return Generation("".join(pieces), len(pieces), 0.01 * len(pieces))


def continuation(reply: str, prefix: str) -> str:
    """What a model that was given `prefix` would write after it, for a scripted whole `reply`:
    the reply without the prefix when it starts with it, else joined on ("..found that" + "in a trial")."""
    if not prefix:
        return reply
    if reply.startswith(prefix):
        return reply[len(prefix):]
    first = reply.split(" ", 1)[0]
    return " " + (reply[:1].lower() + reply[1:] if first in SENTENCE_STARTERS else reply)


# Words a continuation writes in lower case; names and other words keep their capital.
SENTENCE_STARTERS = {"In", "The", "A", "An", "This", "These", "Daily", "Long-term", "Low-dose"}
