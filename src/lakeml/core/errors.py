"""The one exception type for mistakes a user can fix (bad config, missing table, bad input)."""

from __future__ import annotations


class LakemlError(Exception):
    """A user-facing error: the message says what was wrong and how to fix it.

    The CLI prints it on one line without a traceback and exits with status 2.
    """
