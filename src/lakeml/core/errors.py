"""The one exception type for mistakes a user can fix (bad config, missing table, bad input)."""

from __future__ import annotations


class LakemlError(Exception):
    """A user-facing error: the message says what was wrong and how to fix it.

    The CLI prints it on one line without a traceback and exits with status 2.
    """


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (its type name if it has none),
    cut to `limit` characters: what a one-line error quotes from Spark, MLflow or the OS."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]
