"""The one place that turns exceptions into what a Slack user reads."""

from __future__ import annotations

from core.errors import LabmateError


def user_message(exc: BaseException) -> str:
    """A short message that says what to do; internals stay in the log."""
    if isinstance(exc, LabmateError):
        return f":warning: {exc}"
    return (":x: Sorry, something went wrong on my side and it has been logged. "
            "Try again in a minute; if it keeps happening, tell whoever runs labmate.")
