"""One module per task: how its data is read, turned into features, batched and scored.

Importing this package is light; each task module imports torch only inside its functions.
"""

from __future__ import annotations

from training.tasks.base import Data, Task


def get_task(name: str) -> Task:
    """The task object for a spec's `task`."""
    if name == "token-classification":
        from training.tasks.token import TokenClassification

        return TokenClassification()
    if name == "text-classification":
        from training.tasks.text import TextClassification

        return TextClassification()
    if name == "causal-lm":
        from training.tasks.causal import CausalLM

        return CausalLM()
    raise ValueError(f"unknown task {name!r}")


__all__ = ["Data", "Task", "get_task"]
