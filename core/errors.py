"""One error root for the whole product.

Every error a user can cause or fix is a `UserError`: its message is shown as it is (in the
terminal, later in Slack), so it says what went wrong *and what to do*. Anything else that
escapes is a bug and is reported as one.
"""


class LabmateError(Exception):
    """Root of every error labmate raises on purpose."""


class UserError(LabmateError):
    """An error whose message is written for the person who ran the command."""


class ConfigError(UserError):
    """The configuration file or an environment override is invalid."""


class IndexStateError(UserError):
    """The index cannot be opened or written (locked, wrong model, damaged)."""


class IndexLockedError(IndexStateError):
    """Another process holds the index's write lock."""


class ModelMismatchError(IndexStateError):
    """The index was built with a different embedding model than the one configured."""


class NotFoundError(UserError):
    """A paper, file or other named thing does not exist."""


class QueryError(UserError):
    """A search request is malformed (bad filter, bad year range, empty query)."""
